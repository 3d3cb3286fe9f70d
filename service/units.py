"""Units shared by the settings, the engine and the messages that quote sizes."""

MIB = 1 << 20
