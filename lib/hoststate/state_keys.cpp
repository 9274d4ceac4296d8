#include "hoststate/state_keys.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "hoststate/host_files.hpp"
#include "util/durable_file.hpp"

namespace vtpm::hoststate {

namespace {

std::string key_path(const std::string& host_dir, const std::string& uuid) {
    return host_dir + "/" + kVmsDir + "/" + uuid + ".statekey";
}

}  // namespace

Result<std::optional<Bytes>> read_sealed_state_key(const std::string& host_dir, const std::string& uuid) {
    auto raw = read_whole_file(key_path(host_dir, uuid));
    if (raw) return std::optional<Bytes>(std::move(*raw));
    if (raw.code() == rc::kRetry) return std::optional<Bytes>{};
    return make_error(rc::kFail, "VM " + uuid + "'s state key: " + raw.error().message);
}

Result<void> write_sealed_state_key(const std::string& host_dir, const std::string& uuid, ByteView sealed) {
    const std::string dir = host_dir + "/" + kVmsDir, path = key_path(host_dir, uuid);
    if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST)
        return make_error(rc::kFail, "cannot create " + dir + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 || errno != ENOENT)
        return make_error(rc::kFail, "VM " + uuid + " has a state key already (" + path + "): it is never replaced");
    return replace_file_durably(path + ".tmp", path, sealed, 0600);
}

}  // namespace vtpm::hoststate
