"""One blueprint per area; each view validates, calls one domain function, returns JSON."""
