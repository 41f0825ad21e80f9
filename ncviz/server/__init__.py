"""What the dashboard server needs beside the science: the background job runner, budgeted
worker processes (isolation of user input), per-session scratch folders, shareable links, and
the cache warm-up of the container build."""
