// vtpm-host export-key: a VM's sealed state key for an operator who must
// open the state with Debian's swtpm (--key file=FILE,format=hex,
// mode=aes-256-cbc). Only root gets it, and vtpm-hostd logs each export.
#pragma once

namespace vtpm::host {

/// `vtpm-host export-key --vm UUID [--hostd SOCKET] [--out FILE]`; returns
/// the exit status.
int export_key_main(int argc, char** argv);

}  // namespace vtpm::host
