//! Device nodes, FIFOs and sockets on a granted directory are not a component's to open:
//! the host's `open` of a device reads it raw (`c 1 8` prints random bytes), and opening
//! a FIFO blocks a host thread until someone writes. The guarded `open-at` (WASI 0.2)
//! looks at what the path names first (`stat-at`, which opens nothing) and refuses those
//! with `access` (`EACCES`); regular files and directories open as before.
//!
//! Limits: the look and the open are two steps, so a writer of the directory could swap
//! a regular file for a FIFO between them; and wasip1 modules are not guarded
//! (wasmtime-wasi's `path_open` calls its WASI 0.2 code directly, and offers no hook). On
//! a node, the shim's workers also bind every volume `nodev`, so the kernel refuses
//! devices to both, whatever the race.

use wasmtime::component::{Linker, Resource};
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
