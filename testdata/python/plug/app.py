# A Python plug: `greet(n)` is n + 7.
from wit_world import exports


class Greeter(exports.Greeter):
    def greet(self, n: int) -> int:
        return n + 7
