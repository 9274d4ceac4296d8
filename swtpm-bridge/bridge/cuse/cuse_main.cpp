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

#include "util/dynlib.hpp"
#endif

namespace vtpm::bridge {

#ifndef VTPM_HAVE_CUSE

bool cuse_built() { return false; }

Result<void> serve_cuse(CuseDevice&, const CuseOptions&, const std::function<Result<void>()>&) {
    return make_error(rc::kFail, "this vtpm-bridge was built without libfuse3: the cuse interface is not available");
}

#else

namespace {

// libfuse3 is loaded only when `cuse` runs: a socket or chardev bridge does
// not map it (cold start, memory). The functions used, resolved once.
struct FuseApi {
    decltype(&::fuse_req_userdata) req_userdata;
    decltype(&::fuse_session_exit) session_exit;
    decltype(&::fuse_session_loop) session_loop;
    decltype(&::fuse_reply_open) reply_open;
    decltype(&::fuse_reply_buf) reply_buf;
    decltype(&::fuse_reply_err) reply_err;
    decltype(&::fuse_reply_write) reply_write;
    decltype(&::fuse_reply_ioctl) reply_ioctl;
    decltype(&::cuse_lowlevel_setup) setup;
    decltype(&::cuse_lowlevel_teardown) teardown;
};
FuseApi g_fuse{};

Result<void> load_fuse() {
    if (g_fuse.setup) return {};
    // Kept for the life of the process: the session runs until exit.
    auto opened = open_library("libfuse3.so.3", "the cuse interface needs libfuse3: ");
    if (!opened) return opened.error();
    void* lib = *opened;
    FuseApi api{};
    const bool ok = resolve_symbol(lib, "fuse_req_userdata", api.req_userdata) &&
                    resolve_symbol(lib, "fuse_session_exit", api.session_exit) &&
                    resolve_symbol(lib, "fuse_session_loop", api.session_loop) &&
                    resolve_symbol(lib, "fuse_reply_open", api.reply_open) &&
                    resolve_symbol(lib, "fuse_reply_buf", api.reply_buf) &&
                    resolve_symbol(lib, "fuse_reply_err", api.reply_err) &&
                    resolve_symbol(lib, "fuse_reply_write", api.reply_write) &&
                    resolve_symbol(lib, "fuse_reply_ioctl", api.reply_ioctl) &&
                    resolve_symbol(lib, "cuse_lowlevel_setup", api.setup) &&
                    resolve_symbol(lib, "cuse_lowlevel_teardown", api.teardown);
    if (!ok) return make_error(rc::kFail, std::string("libfuse3 lacks a function the cuse interface uses: ") + ::dlerror());
    g_fuse = api;
    return {};
}

struct Context {
    CuseDevice* device = nullptr;
    const std::function<Result<void>()>* ready = nullptr;
    fuse_session* session = nullptr;
    std::string failure;
};

Context& ctx(fuse_req_t req) { return *static_cast<Context*>(g_fuse.req_userdata(req)); }

void on_init_done(void* userdata) {
    auto* c = static_cast<Context*>(userdata);
    if (auto r = (*c->ready)(); !r) {
        c->failure = r.error().message;
        g_fuse.session_exit(c->session);
    }
}

void on_open(fuse_req_t req, fuse_file_info* fi) {
    ctx(req).device->open();
    g_fuse.reply_open(req, fi);
}

void on_read(fuse_req_t req, size_t size, off_t, fuse_file_info*) {
    const Bytes b = ctx(req).device->read(size);
    g_fuse.reply_buf(req, reinterpret_cast<const char*>(b.data()), b.size());
}

void on_write(fuse_req_t req, const char* buf, size_t size, off_t, fuse_file_info*) {
    const long n = ctx(req).device->write(ByteView(reinterpret_cast<const uint8_t*>(buf), size));
    if (n < 0) g_fuse.reply_err(req, static_cast<int>(-n));
    else g_fuse.reply_write(req, static_cast<size_t>(n));
}

void on_ioctl(fuse_req_t req, int cmd, void*, fuse_file_info*, unsigned, const void* in_buf, size_t in_bufsz,
              size_t out_bufsz) {
    Context& c = ctx(req);
    auto r = c.device->ioctl(static_cast<uint32_t>(cmd),
                             ByteView(static_cast<const uint8_t*>(in_buf), in_bufsz));
    if (r.err) {
        g_fuse.reply_err(req, r.err);
        return;
    }
    g_fuse.reply_ioctl(req, 0, r.out.data(), std::min(r.out.size(), out_bufsz));
    if (r.shutdown) g_fuse.session_exit(c.session);
}

}  // namespace

bool cuse_built() { return true; }

Result<void> serve_cuse(CuseDevice& device, const CuseOptions& o, const std::function<Result<void>()>& ready) {
    if (::access("/dev/cuse", R_OK | W_OK) != 0)
        return make_error(rc::kFail, std::string("cannot use /dev/cuse: ") + std::strerror(errno) +
                                         " (the kernel's CUSE driver: modprobe cuse)");
    if (::access(("/dev/" + o.name).c_str(), F_OK) == 0)
        return make_error(rc::kFail, "/dev/" + o.name + " already exists");
    if (auto r = load_fuse(); !r) return r;
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
    fuse_session* se = g_fuse.setup(2, argv, &ci, &ops, &multithreaded, &c);
    if (!se) return make_error(rc::kFail, "could not create /dev/" + o.name + " through CUSE");
    c.session = se;
    const int rc_loop = g_fuse.session_loop(se);
    g_fuse.teardown(se);
    if (!c.failure.empty()) return make_error(rc::kFail, c.failure);
    if (rc_loop < 0) return make_error(rc::kFail, std::string("the CUSE session failed: ") + std::strerror(-rc_loop));
    return {};
}

#endif

}  // namespace vtpm::bridge
