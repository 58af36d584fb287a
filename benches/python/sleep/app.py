# The idle Python command of the benches: `wasi:cli/run` sleeps for an hour (density).
import time

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        time.sleep(3600)
