# The Python command of the benches: `wasi:cli/run` prints one line.
from wit_world import exports

class Run(exports.Run):
    def run(self) -> None:
        print("hello from python")
