(module (func (export "_start") nop))
