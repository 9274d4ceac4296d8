#include "util/durable_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace vtpm {
namespace {
std::string errstr() { return std::strerror(errno); }

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}
}  // namespace

Result<void> sync_dir_of(const std::string& path) {
    // The entry a rename or unlink changed is on disk only once its
    // directory is: a failure here means the change may not survive a
    // power cut, so it is reported and nothing is acknowledged.
    const std::string dir = dir_of(path);
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) return make_error(rc::kFail, "could not open the directory " + dir + " to sync it: " + errstr());
    if (::fsync(d.get()) < 0) return make_error(rc::kFail, "could not sync the directory " + dir + ": " + errstr());
    return {};
}

Result<void> remove_file_durably(const std::string& path, bool must_exist) {
    if (::unlink(path.c_str()) < 0) {
        if (errno == ENOENT && !must_exist) return {};
        return make_error(rc::kFail, "could not delete " + path + ": " + errstr());
    }
    return sync_dir_of(path);
}

Result<void> replace_file_durably(const std::string& tmp_prefix, const std::string& path, ByteView data,
                                  mode_t mode) {
    // A fresh name created exclusively (mkostemp: O_CREAT|O_EXCL, mode 0600):
    // nothing planted at a predictable name in the directory is followed or
    // truncated, and a temp file left by a crash is never reused.
    std::string tmp = tmp_prefix + ".XXXXXX";
    UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
    if (!fd) return make_error(rc::kFail, "could not create a temporary file beside " + path + ": " + errstr());
    auto fail = [&](const std::string& what) {
        std::string e = what + ": " + errstr();
        ::unlink(tmp.c_str());
        return make_error(rc::kFail, e);
    };
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail("could not write " + tmp);
        off += static_cast<size_t>(n);
    }
    if (::fchmod(fd.get(), mode) < 0) return fail("could not set the mode of " + tmp);
    if (::fsync(fd.get()) < 0) return fail("could not sync " + tmp);
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) return fail("could not rename " + tmp + " to " + path);
    return sync_dir_of(path);
}

Result<Bytes> read_whole_file(const std::string& path, std::optional<mode_t> set_mode) {
    // O_NONBLOCK: a FIFO put in the file's place would block the open until
    // a writer came; it is refused below instead (no effect on a file).
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
        if (errno == ENOENT) return make_error(rc::kRetry, path + " does not exist");
        // Never read (and chmod) what a link points to, as swtpm 0.7.1 does.
        if (errno == ELOOP) return make_error(rc::kFail, path + " is a symbolic link, not a regular file");
        return make_error(rc::kFail, "could not open " + path + ": " + errstr());
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) < 0) return make_error(rc::kFail, "could not stat " + path + ": " + errstr());
    if (!S_ISREG(st.st_mode)) return make_error(rc::kFail, path + " is not a regular file");
    // Only a mode that differs is set: an fchmod to the same mode would still
    // update the ctime and dirty the inode on every read of the state.
    if (set_mode && (st.st_mode & 07777) != *set_mode && ::fchmod(fd.get(), *set_mode) < 0 && errno != EPERM)
        return make_error(rc::kFail, "could not chmod " + path + ": " + errstr());
    Bytes data(static_cast<size_t>(st.st_size));
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::read(fd.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(rc::kFail, "could not read " + path + ": " + errstr());
        if (n == 0) break;
        off += static_cast<size_t>(n);
    }
    data.resize(off);
    return data;
}

Result<UniqueFd> take_lock(const std::string& lock_path, const std::string& what, int open_flags) {
    UniqueFd fd(::open(lock_path.c_str(), open_flags | O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0660));
    if (!fd) return make_error(rc::kFail, "could not open the lock file " + lock_path + ": " + errstr());
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_SETLK, &fl) < 0)
        return make_error(rc::kFail, what + " is locked by another process (" + errstr() + ")");
    return fd;
}

}  // namespace vtpm
