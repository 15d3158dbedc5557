import time
from tests.stack import tiny_spec
def test_trial(fault_stack):
    c = fault_stack.client
    t0 = time.monotonic()
    r = c.submit(tiny_spec("t1"))
    end = c.wait_terminal(r["id"])
    print("first", end["status"], end["attempt"], round(time.monotonic()-t0,1), end["hardware"])
    t0 = time.monotonic()
    r = c.submit(tiny_spec("t2", training={"epochs": 10, "batch_size": 32, "log_every_n_batches": 5}))
    end = c.wait_terminal(r["id"])
    print("second", end["status"], round(time.monotonic()-t0,1), end["duration_seconds"], fault_stack.points(r["id"]))
    print(end["log_tail"][-5:])
