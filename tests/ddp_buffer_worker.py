"""A DDP rank for test_device_semantics (imports torch only, so spawning it is cheap): a module
with a SwAV-like queue buffer pushed in forward, wrapped with given DDP arguments."""

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class QueueModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.register_buffer("queue", torch.zeros(4, 3))

    def forward(self, x):
        z = self.lin(x)
        with torch.no_grad():  # newest rows in front, like SwAV's queue
            self.queue.copy_(torch.cat([z.detach(), self.queue[: -len(z)]]))
        return z.sum()


def run(rank: int, ddp_kwargs_list: list, port: int, out: str) -> None:
    """For each DDP kwargs: two steps on rank-specific inputs; saves out/queue{i}_{rank}.pt."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    for i, kwargs in enumerate(ddp_kwargs_list):
        ddp = DistributedDataParallel(QueueModule(), **kwargs)
        for step in range(2):
            ddp(torch.full((2, 3), float(10 * rank + step))).backward()
        torch.save(ddp.module.queue, f"{out}/queue{i}_{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":  # python tests/ddp_buffer_worker.py RANK PORT OUT KWARGS_JSON
    import json
    import sys

    run(int(sys.argv[1]), json.loads(sys.argv[4]), int(sys.argv[2]), sys.argv[3])
