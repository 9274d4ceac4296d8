// The CUSE front end (`vtpm-bridge cuse -n NAME`): CuseDevice served as
// /dev/NAME through the kernel's CUSE driver and libfuse3, as swtpm 0.7.1's
// `swtpm cuse` (which uses libfuse 2's identical CUSE protocol). Built only
// when libfuse3 is found; needs /dev/cuse at run time.
#pragma once

#include <functional>
#include <string>

#include "bridge/cuse/device.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

struct CuseOptions {
    std::string name;              // the device name (/dev/NAME)
    unsigned major = 0, minor = 0;  // 0: the kernel chooses
};

/// True when this build has the CUSE front end.
bool cuse_built();

/// Serve `device` until CMD_SHUTDOWN or the session ends. Like swtpm cuse
/// it detaches into the background once the device exists; `ready` runs in
/// the served process then (pid file, privileges, seccomp) and may refuse.
Result<void> serve_cuse(CuseDevice& device, const CuseOptions& o, const std::function<Result<void>()>& ready);

}  // namespace vtpm::bridge
