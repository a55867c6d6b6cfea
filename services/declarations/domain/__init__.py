"""Pure domain of the declarations service: no I/O, no clock, no id generation."""
