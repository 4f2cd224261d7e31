"""The bus: one wire format (schema), one transport, topic names, recording and replay.

Never imports torch: the PC beside a sensor runs capture and stream alone.
"""
