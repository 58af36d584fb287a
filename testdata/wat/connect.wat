;; Core module of the `wasmoci:fixtures/connect` world: opens a TCP connection to
;; 127.0.0.1:PORT (PORT is argv[1]) with `wasi:sockets`. `run` succeeds when connected and
;; fails when the host refuses (no socket granted, or the address is not allowed).
(module
  (import "wasi:cli/environment@0.2.12" "get-arguments" (func $get_arguments (param i32)))
  (import "wasi:sockets/instance-network@0.2.12" "instance-network" (func $instance_network (result i32)))
  (import "wasi:sockets/tcp-create-socket@0.2.12" "create-tcp-socket"
    (func $create_tcp_socket (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.12" "[method]tcp-socket.start-connect"
    (func $start_connect (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:sockets/tcp@0.2.12" "[method]tcp-socket.finish-connect"
    (func $finish_connect (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.12" "[method]tcp-socket.subscribe" (func $subscribe (param i32) (result i32)))
  (import "wasi:io/poll@0.2.12" "[method]pollable.block" (func $block (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  ;; argv[1] as a decimal number
  (func $port (result i32)
    (local $args i32) (local $ptr i32) (local $len i32) (local $i i32) (local $n i32)
    (call $get_arguments (i32.const 0))          ;; list<string> at 0: (ptr, len)
    (if (i32.lt_u (i32.load (i32.const 4)) (i32.const 2)) (then (return (i32.const 0))))
    (local.set $args (i32.load (i32.const 0)))
    (local.set $ptr (i32.load (i32.add (local.get $args) (i32.const 8))))
    (local.set $len (i32.load (i32.add (local.get $args) (i32.const 12))))
    (block $done
      (loop $digit
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
          (i32.sub (i32.load8_u (i32.add (local.get $ptr) (local.get $i))) (i32.const 48))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    (local.get $n))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $network i32) (local $socket i32) (local $pollable i32)
    (local.set $network (call $instance_network))
    ;; create-tcp-socket(ipv4) -> result<tcp-socket, error-code> at 16
    (call $create_tcp_socket (i32.const 0) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then (return (i32.const 1))))
    (local.set $socket (i32.load (i32.const 20)))
    ;; start-connect(socket, network, ipv4 { port, 127.0.0.1 }) -> result at 32
    (call $start_connect (local.get $socket) (local.get $network)
      (i32.const 0) (call $port) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 32))
    (if (i32.load8_u (i32.const 32)) (then (return (i32.const 1))))
    (local.set $pollable (call $subscribe (local.get $socket)))
    ;; finish-connect until it is not `would-block` (8); result at 48, error code at 52
    (loop $wait
      (call $finish_connect (local.get $socket) (i32.const 48))
      (if (i32.eqz (i32.load8_u (i32.const 48))) (then (return (i32.const 0))))
      (if (i32.eq (i32.load8_u (i32.const 52)) (i32.const 8))
        (then (call $block (local.get $pollable)) (br $wait))))
    (i32.const 1)))
