"""Progress off a terminal: a line at most every so often and one at the end; on a terminal, Keras' Progbar."""

import io

from core.progress import Progress, stage


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_line_every_interval_and_at_the_end():
    log, clock = io.StringIO(), Clock()
    progress = Progress(2600, "sentence", "translating (beam 4)", every_seconds=30, stream=log, clock=clock)
    assert progress.bar is None
    for seconds in (10, 20, 31, 45, 62):  # units done at these times, 200 at a time
        clock.now = 100.0 + seconds
        progress.add(200)
    assert log.getvalue().splitlines() == ["translating (beam 4): 600/2,600 sentences (23%), 31 s",
                                           "translating (beam 4): 1,000/2,600 sentences (38%), 62 s"]
    clock.now = 170.0
    progress.add(1600)  # the end: always a line
    assert log.getvalue().splitlines()[-1] == "translating (beam 4): 2,600/2,600 sentences (100%), 70 s"


def test_a_terminal_gets_keras_progbar():
    progress = Progress(10, "pair", "scoring", stream=Terminal())
    assert progress.bar is not None and progress.bar.target == 10
    progress.add(4)
    assert progress.done == 4 and progress.bar._seen_so_far == 4


def test_a_stage_says_what_it_does_before_and_how_long_it_took_after():
    log, clock = io.StringIO(), Clock()
    with stage("Saving the encoder", stream=log, clock=clock):
        assert log.getvalue() == "Saving the encoder ...\n"
        clock.now += 12.4
    assert log.getvalue().splitlines() == ["Saving the encoder ...", "Saving the encoder: 12 s"]
