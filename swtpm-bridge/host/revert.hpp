// vtpm-host revert: an operator's explicit snapshot revert. A save restores
// once; to restore a VM's save again (virsh snapshot-revert, a restore from
// an older image), root makes that generation the VM's latest, unconsumed.
#pragma once

namespace vtpm::host {

/// `vtpm-host revert --vm UUID --generation G [--hostd SOCKET]`; returns
/// the exit status.
int revert_main(int argc, char** argv);

}  // namespace vtpm::host
