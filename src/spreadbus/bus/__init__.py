"""The only code that knows Redis: key names, codecs, connections, the embedded server and the
service lifecycle."""
