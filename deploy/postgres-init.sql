-- One database per service (compose only; the local stack creates them from deploy/stack.py).
CREATE DATABASE points_declarations;
CREATE DATABASE points_review;
CREATE DATABASE points_ranking;
CREATE DATABASE points_exchange;
