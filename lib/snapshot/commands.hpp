// The snapshot guard's vendor control commands, added to the core's table:
// CMD_VTPM_RAM_DIGEST (a patched QEMU's RAM digest; phase 3 runs the final
// verification), CMD_VTPM_SNAPSHOT (a record on demand) and
// CMD_VTPM_VERIFY_RAM (the final verification of a restore before any vCPU
// runs). All only with --vtpm-vendor-ctrl; CMD_VTPM_VERIFY_RAM also reaches
// the bridge through its admin socket (verify_reply).
#pragma once

#include "core/dispatcher.hpp"
#include "snapshot/guard.hpp"

namespace vtpm::snapshot {

/// Make `guard` a blob filter of `d` and, with vendor commands on, add its
/// commands. `guard` must outlive `d`.
void attach(core::Dispatcher& d, SnapshotGuard& guard);

/// The answer to CMD_VTPM_VERIFY_RAM (SnapshotGuard::verify_before_run on
/// `e`): result 0 and no text, or the error's code and its message.
core::Reply verify_reply(SnapshotGuard& guard, engine::Engine& e);

}  // namespace vtpm::snapshot
