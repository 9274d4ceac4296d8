// The snapshot guard's vendor control commands, added to the core's table:
// CMD_VTPM_RAM_DIGEST (a patched QEMU's RAM digest) and CMD_VTPM_SNAPSHOT
// (a record on demand). Both only with --vtpm-vendor-ctrl.
#pragma once

#include "core/dispatcher.hpp"
#include "snapshot/guard.hpp"

namespace vtpm::snapshot {

/// Make `guard` a blob filter of `d` and, with vendor commands on, add its
/// commands. `guard` must outlive `d`.
void attach(core::Dispatcher& d, SnapshotGuard& guard);

}  // namespace vtpm::snapshot
