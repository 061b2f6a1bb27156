"""The call's verbs, one room each (answer, say, listen, transfer, record, hang up).

Each is handed what it needs (the ESL connection, the channel's uuid, the call record…) and imports no session.
"""
