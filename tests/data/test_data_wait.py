import time

from mmmae.data.data_wait import DataWait

PAUSE = 0.02  # seconds each batch keeps the loop waiting


def slow_batches(count: int):
    for batch in range(count):
        time.sleep(PAUSE)
        yield batch


def test_the_wait_for_each_batch_is_counted_and_taken_once():
    wait = DataWait()
    seen = list(wait.timed(slow_batches(3)))
    assert seen == [0, 1, 2]
    first = wait.take()
    assert first >= 3 * PAUSE  # sleep never returns early; the loop's own work between batches is not counted
    assert wait.take() == 0.0


def test_the_loops_own_time_is_not_counted():
    wait = DataWait()
    tic = time.perf_counter()
    for _ in wait.timed(range(3)):  # batches at hand at once
        time.sleep(PAUSE)  # the loop's work
    elapsed = time.perf_counter() - tic
    assert wait.take() + 3 * PAUSE <= elapsed  # counting the loop's work too would give about elapsed
