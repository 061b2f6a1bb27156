"""Turn-taking strategies: pure, time passed in, one concern each (barge-in, backchannels, keypad, idle)."""
