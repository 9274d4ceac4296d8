// vtpm-host restore: a libvirt save image restored paused, its vTPM's
// snapshot record verified once the whole stream is loaded, and only then
// resumed (restore.cpp).
#pragma once

namespace vtpm::host {

/// `vtpm-host restore FILE [--connect URI] [--bridge-config PATH]
/// [--admin-socket PATH]` (argv[1] is "restore"): virsh restore --paused,
/// CMD_VTPM_VERIFY_RAM on the bridge's admin socket, then virsh resume; on
/// a refusal virsh destroy, the bridge's reason on stderr and exit status 1.
/// Usage errors exit 2.
int restore_main(int argc, char** argv);

}  // namespace vtpm::host
