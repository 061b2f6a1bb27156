"""callagent: an AI voice agent that answers phone calls inside FreeSWITCH."""

__version__ = "0.1.0"
