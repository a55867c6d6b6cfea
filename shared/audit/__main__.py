from shared.audit.cli import main

main()
