#include "bridge/cuse/cuse_main.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <unistd.h>

#include "util/log.hpp"

#ifdef VTPM_HAVE_CUSE
#define FUSE_USE_VERSION 31
#include <cuse_lowlevel.h>
#include <fuse_lowlevel.h>
#endif

namespace vtpm::bridge {

#ifndef VTPM_HAVE_CUSE

bool cuse_built() { return false; }

Result<void> serve_cuse(CuseDevice&, const CuseOptions&, const std::function<Result<void>()>&) {
    return make_error(rc::kFail, "this vtpm-bridge was built without libfuse3: the cuse interface is not available");
}

#else

namespace {

struct Context {
    CuseDevice* device = nullptr;
    const std::function<Result<void>()>* ready = nullptr;
    fuse_session* session = nullptr;
    std::string failure;
};

Context& ctx(fuse_req_t req) { return *static_cast<Context*>(fuse_req_userdata(req)); }

void on_init_done(void* userdata) {
    auto* c = static_cast<Context*>(userdata);
    if (auto r = (*c->ready)(); !r) {
        c->failure = r.error().message;
        fuse_session_exit(c->session);
    }
}

void on_open(fuse_req_t req, fuse_file_info* fi) {
    ctx(req).device->open();
    fuse_reply_open(req, fi);
}

void on_read(fuse_req_t req, size_t size, off_t, fuse_file_info*) {
    const Bytes b = ctx(req).device->read(size);
    fuse_reply_buf(req, reinterpret_cast<const char*>(b.data()), b.size());
}

void on_write(fuse_req_t req, const char* buf, size_t size, off_t, fuse_file_info*) {
    const long n = ctx(req).device->write(ByteView(reinterpret_cast<const uint8_t*>(buf), size));
    if (n < 0) fuse_reply_err(req, static_cast<int>(-n));
    else fuse_reply_write(req, static_cast<size_t>(n));
}

void on_ioctl(fuse_req_t req, int cmd, void*, fuse_file_info*, unsigned, const void* in_buf, size_t in_bufsz,
              size_t out_bufsz) {
    Context& c = ctx(req);
    auto r = c.device->ioctl(static_cast<uint32_t>(cmd),
                             ByteView(static_cast<const uint8_t*>(in_buf), in_bufsz));
    if (r.err) {
        fuse_reply_err(req, r.err);
        return;
    }
    fuse_reply_ioctl(req, 0, r.out.data(), std::min(r.out.size(), out_bufsz));
    if (r.shutdown) fuse_session_exit(c.session);
}

}  // namespace

bool cuse_built() { return true; }

Result<void> serve_cuse(CuseDevice& device, const CuseOptions& o, const std::function<Result<void>()>& ready) {
    if (::access("/dev/cuse", R_OK | W_OK) != 0)
        return make_error(rc::kFail, std::string("cannot use /dev/cuse: ") + std::strerror(errno) +
                                         " (the kernel's CUSE driver: modprobe cuse)");
    if (::access(("/dev/" + o.name).c_str(), F_OK) == 0)
        return make_error(rc::kFail, "/dev/" + o.name + " already exists");
    const std::string devname = "DEVNAME=" + o.name;
    const char* dev_info[] = {devname.c_str()};
    cuse_info ci{};
    ci.dev_major = o.major;
    ci.dev_minor = o.minor;
    ci.dev_info_argc = 1;
    ci.dev_info_argv = dev_info;
    cuse_lowlevel_ops ops{};
    ops.init_done = on_init_done;
    ops.open = on_open;
    ops.read = on_read;
    ops.write = on_write;
    ops.ioctl = on_ioctl;
    Context c{&device, &ready, nullptr, {}};
    // Single-threaded, detached once the device exists: as swtpm cuse runs.
    char prog[] = "vtpm-bridge";
    char single[] = "-s";
    char* argv[] = {prog, single, nullptr};
    int multithreaded = 0;
    fuse_session* se = cuse_lowlevel_setup(2, argv, &ci, &ops, &multithreaded, &c);
    if (!se) return make_error(rc::kFail, "could not create /dev/" + o.name + " through CUSE");
    c.session = se;
    const int rc_loop = fuse_session_loop(se);
    cuse_lowlevel_teardown(se);
    if (!c.failure.empty()) return make_error(rc::kFail, c.failure);
    if (rc_loop < 0) return make_error(rc::kFail, std::string("the CUSE session failed: ") + std::strerror(-rc_loop));
    return {};
}

#endif

}  // namespace vtpm::bridge
