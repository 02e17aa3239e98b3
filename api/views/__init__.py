"""API views: each turns input into one service or selector call, and its result into
output. Errors are the services' own, turned into problem details by one handler."""
