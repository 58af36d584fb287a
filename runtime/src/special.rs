//! Device nodes, FIFOs and sockets on a granted directory are not a guest's to open:
//! the host's `open` of a device reads it raw (`c 1 8` prints random bytes), and opening
//! a FIFO blocks a host thread until someone writes. The guarded `open-at` (WASI 0.2)
//! looks at what the path names first (`stat-at`, which opens nothing) and refuses those
//! with `access` (`EACCES`); regular files and directories open as before.
//!
//! A wasip1 module's `path_open` is guarded the same way, with `path_filestat_get`
//! (see [`guard_module`]). wasmtime-wasi implements both with its own memory access, which
//! finds the guest's memory only when wasm calls them; so the guard calls them through a
//! small helper module that imports the guest's memory and exports it as its own. The
//! unguarded functions come from a linker of their own: the guest cannot import them.
//!
//! Limits: the look and the open are two steps, so a writer of the directory could swap
//! a regular file for a FIFO between them. On a node, the shim's workers also bind every
//! volume `nodev`, so the kernel refuses devices, whatever the race.

use std::sync::{Arc, OnceLock};

use wasmtime::component::{Linker, Resource};
use wasmtime::{Caller, Extern, Func, Instance, Module, TypedFunc};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DescriptorType, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};

use crate::error::{Error, Result, wasmtime_message};

/// The WASI 0.2 filesystem interface whose `open-at` is guarded.
const TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Whether a file of this type may be opened by a guest.
fn openable(kind: DescriptorType) -> bool {
    matches!(
        kind,
        DescriptorType::RegularFile | DescriptorType::Directory | DescriptorType::SymbolicLink
    )
}

/// Replaces `open-at` in `linker` (which has WASI 0.2) by the guarded one.
pub(crate) fn guard_component<T: WasiFilesystemView + 'static>(
    linker: &mut Linker<T>,
) -> Result<()> {
    linker.allow_shadowing(true);
    let defined = linker.instance(TYPES).and_then(|mut types| {
        types.func_wrap_async(
            "[method]descriptor.open-at",
            |mut store,
             (fd, path_flags, path, open_flags, flags): (
                Resource<Descriptor>,
                PathFlags,
                String,
                OpenFlags,
                DescriptorFlags,
            )| {
                Box::new(async move {
                    let mut view = store.data_mut().filesystem();
                    let looked = HostDescriptor::stat_at(
                        &mut view,
                        Resource::new_borrow(fd.rep()),
                        path_flags,
                        path.clone(),
                    )
                    .await;
                    if let Ok(stat) = &looked
                        && !openable(stat.type_)
                    {
                        return Ok((Err(ErrorCode::Access),));
                    }
                    let opened =
                        HostDescriptor::open_at(&mut view, fd, path_flags, path, open_flags, flags)
                            .await;
                    Ok((match opened {
                        Ok(descriptor) => Ok(descriptor),
                        Err(e) => Err(e.downcast()?),
                    },))
                })
            },
        )
    });
    linker.allow_shadowing(false);
    defined.map_err(|e| Error::Engine(wasmtime_message(&e)))
}

/// The wasip1 module.
const P1: &str = "wasi_snapshot_preview1";

/// `errno::acces`, and the `filetype`s a guest may open: directory, regular file, symlink.
const ERRNO_ACCES: i32 = 2;
const OPENABLE_FILETYPES: [u8; 3] = [3, 4, 7];
/// A `filestat` is 64 bytes; its `filetype` is the byte at 16.
const FILESTAT_SIZE: usize = 64;
const FILESTAT_TYPE: usize = 16;

type PathOpen = (i32, i32, i32, i32, i32, i64, i64, i32, i32);
type PathFilestatGet = (i32, i32, i32, i32, i32);

/// What a wasip1 store keeps for the guard: the unguarded functions, and the helper
/// instance made on the first `path_open`.
pub(crate) struct ModuleGuard {
    helper_module: Arc<OnceLock<Module>>,
    unguarded: Option<(Func, Func)>,
    helper: Option<(TypedFunc<PathOpen, i32>, TypedFunc<PathFilestatGet, i32>)>,
}

impl ModuleGuard {
    /// A guard whose helper is compiled once per `helper_module` cell (one per engine).
    pub(crate) fn new(helper_module: Arc<OnceLock<Module>>) -> Self {
        ModuleGuard {
            helper_module,
            unguarded: None,
            helper: None,
        }
    }

    /// Takes the unguarded functions into `store`, from a linker of their own that the
    /// guest never sees (so a guest cannot import them by some name); before
    /// instantiation.
    pub(crate) fn prepare<T: GuardedModule>(store: &mut wasmtime::Store<T>) -> Result<()> {
        let engine_error = |e: wasmtime::Error| Error::Engine(wasmtime_message(&e));
        let mut private = wasmtime::Linker::<T>::new(store.engine());
        wasmtime_wasi::p1::add_to_linker_async(&mut private, |h: &mut T| h.wasi())
            .map_err(engine_error)?;
        let mut take = |name: &str| {
            private
                .get(&mut *store, P1, name)
                .ok()
                .and_then(Extern::into_func)
                .ok_or_else(|| Error::Engine(format!("wasmtime-wasi has no `{P1}::{name}`")))
        };
        let unguarded = (take("path_open")?, take("path_filestat_get")?);
        store.data_mut().guard().unguarded = Some(unguarded);
        Ok(())
    }
}

/// Store data that holds a [`ModuleGuard`], and the wasip1 context.
pub(crate) trait GuardedModule: Send + 'static {
    fn guard(&mut self) -> &mut ModuleGuard;
    fn wasi(&mut self) -> &mut wasmtime_wasi::p1::WasiP1Ctx;
}

/// Replaces `path_open` in `linker` (which has wasip1) by the guarded one: devices, FIFOs
/// and sockets fail with `acces`. Call [`ModuleGuard::prepare`] on each store.
pub(crate) fn guard_module<T: GuardedModule>(linker: &mut wasmtime::Linker<T>) -> Result<()> {
    let engine_error = |e: wasmtime::Error| Error::Engine(wasmtime_message(&e));
    linker.allow_shadowing(true);
    let defined = linker
        .func_wrap_async(
            P1,
            "path_open",
            |mut caller: Caller<'_, T>, args: PathOpen| {
                Box::new(async move { guarded_path_open(&mut caller, args).await })
            },
        )
        .map(|_| ());
    linker.allow_shadowing(false);
    defined.map_err(engine_error)
}

async fn guarded_path_open<T: GuardedModule>(
    caller: &mut Caller<'_, T>,
    args: PathOpen,
) -> wasmtime::Result<i32> {
    let (open, stat) = helper(caller).await?;
    let memory = match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => memory,
        _ => return Ok(ERRNO_ACCES),
    };
    let (fd, lookup, path, path_len, ..) = args;
    // The look needs 64 bytes of guest memory for its answer: the first 64, put back
    // as they were before the guest runs again.
    let mut saved = [0u8; FILESTAT_SIZE];
    if memory.read(&*caller, 0, &mut saved).is_err() {
        // A memory smaller than the answer (custom page sizes) gets no look, so no open.
        return Ok(ERRNO_ACCES);
    }
    let looked = stat
        .call_async(&mut *caller, (fd, lookup, path, path_len, 0))
        .await;
    let mut kind = [0u8; 1];
    memory.read(&*caller, FILESTAT_TYPE, &mut kind)?;
    memory.write(&mut *caller, 0, &saved)?;
    if looked? == 0 && !OPENABLE_FILETYPES.contains(&kind[0]) {
        return Ok(ERRNO_ACCES);
    }
    open.call_async(&mut *caller, args).await
}

/// The helper instance of this store, made on first use.
async fn helper<T: GuardedModule>(
    caller: &mut Caller<'_, T>,
) -> wasmtime::Result<(TypedFunc<PathOpen, i32>, TypedFunc<PathFilestatGet, i32>)> {
    if let Some(helper) = &caller.data_mut().guard().helper {
        return Ok(helper.clone());
    }
    let memory = caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmtime::Error::msg("the module exports no `memory`"))?;
    let guard = caller.data_mut().guard();
    let (open, stat) = guard
        .unguarded
        .ok_or_else(|| wasmtime::Error::msg("the wasip1 guard was not prepared"))?;
    let cell = guard.helper_module.clone();
    let module = match cell.get() {
        Some(module) => module.clone(),
        None => {
            let module = Module::new(caller.engine(), helper_wasm())?;
            cell.get_or_init(|| module).clone()
        }
    };
    let instance = Instance::new_async(
        &mut *caller,
        &module,
        &[memory.into(), open.into(), stat.into()],
    )
    .await?;
    let helper = (
        instance.get_typed_func(&mut *caller, "open")?,
        instance.get_typed_func(&mut *caller, "stat")?,
    );
    caller.data_mut().guard().helper = Some(helper.clone());
    Ok(helper)
}

/// The helper: imports the guest's memory and the two unguarded functions, exports the
/// memory as `memory` and a wasm function calling each (`open`, `stat`).
fn helper_wasm() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
        ImportSection, Instruction, MemoryType, TypeSection, ValType,
    };
    let (i32, i64) = (ValType::I32, ValType::I64);
    let open_params = [i32, i32, i32, i32, i32, i64, i64, i32, i32];
    let stat_params = [i32; 5];
    let mut types = TypeSection::new();
    types.ty().function(open_params, [i32]);
    types.ty().function(stat_params, [i32]);
    let mut imports = ImportSection::new();
    let memory = MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    };
    imports.import("guest", "memory", EntityType::Memory(memory));
    imports.import("unguarded", "path_open", EntityType::Function(0));
    imports.import("unguarded", "path_filestat_get", EntityType::Function(1));
    let mut functions = FunctionSection::new();
    functions.function(0).function(1);
    let mut code = CodeSection::new();
    for (callee, arity) in [(0u32, open_params.len()), (1, stat_params.len())] {
        let mut body = Function::new([]);
        for local in 0..arity as u32 {
            body.instruction(&Instruction::LocalGet(local));
        }
        body.instruction(&Instruction::Call(callee));
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("open", ExportKind::Func, 2);
    exports.export("stat", ExportKind::Func, 3);
    let mut module = wasm_encoder::Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&exports)
        .section(&code);
    module.finish()
}
