# A Python middle: `greet(n)` is n + the logger's `prefix()`.
from wit_world import exports
from wit_world.imports import logger


class Greeter(exports.Greeter):
    def greet(self, n: int) -> int:
        return n + logger.prefix()
