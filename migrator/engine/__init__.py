"""What phases use: events, run context, retries."""
