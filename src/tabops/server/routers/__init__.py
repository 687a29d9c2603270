"""One router per URL prefix; each only translates HTTP to service calls."""
