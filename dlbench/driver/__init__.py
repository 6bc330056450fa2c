"""The driver side: plans the matrix, supervises one worker process per job, stores rows, shows progress."""
