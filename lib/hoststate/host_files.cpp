#include "hoststate/host_files.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "tpm/objects.hpp"
#include "util/durable_file.hpp"

namespace vtpm::hoststate {

Result<HostConfig> read_host_config(const std::string& host_dir) {
    const std::string path = host_path(host_dir, kHostConf);
    auto bytes = read_whole_file(path);
    if (!bytes) return make_error(rc::kFail, path + ": " + bytes.error().message + " (run vtpm-host provision first)");
    std::istringstream in(std::string(bytes->begin(), bytes->end()));
    std::string line;
    std::vector<unsigned> pcrs;
    while (std::getline(in, line)) {
        if (line.rfind("authkey_pcrs = ", 0) != 0) continue;
        auto parsed = tpm::parse_pcr_list(line.substr(15));
        if (!parsed) return make_error(rc::kFail, path + ": bad authkey_pcrs");
        pcrs = std::move(*parsed);
    }
    if (pcrs.empty()) return make_error(rc::kFail, path + " has no authkey_pcrs");
    return HostConfig{tpm::pcr_selection(TPM2_ALG_SHA256, pcrs)};
}

Result<void> write_host_file(const std::string& host_dir, const std::string& name, const std::string& text,
                             unsigned mode) {
    const std::string p = host_path(host_dir, name);
    return replace_file_durably(p + ".tmp", p, ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                                static_cast<mode_t>(mode));
}

Result<void> write_provisioned(const std::string& host_dir, const ProvisionedKeys& k) {
    if (mkdir(host_dir.c_str(), 0755) != 0 && errno != EEXIST)
        return make_error(rc::kFail, "cannot create " + host_dir + ": " + std::strerror(errno));
    const std::pair<const char*, std::string> files[] = {
        {kAkPem, k.ak_pem},
        {kAkPub, std::string(k.ak_pub.begin(), k.ak_pub.end())},
        {kAuthKeyPem, k.authkey_pem},
        {kAuthKeyPub, std::string(k.authkey_pub.begin(), k.authkey_pub.end())},
        {kAuthKeyPolicy, std::string(k.policy.begin(), k.policy.end())},
    };
    for (const auto& [name, text] : files)
        if (auto r = write_host_file(host_dir, name, text); !r) return r;
    if (!k.sealed_auth.empty())
        if (auto r = write_host_file(host_dir, kAuthKeySealed,
                                     std::string(k.sealed_auth.begin(), k.sealed_auth.end()), 0600);
            !r)
            return r;
    std::ostringstream conf;
    conf << "# written by vtpm-host provision\n"
         << "host_ak_handle = " << hex32(k.ak_handle) << "\n"
         << "authkey_handle = " << hex32(k.authkey_handle) << "\n"
         << "authkey_pcr_bank = sha256\n"
         << "authkey_pcrs = " << tpm::pcr_list_text(k.pcrs) << "\n"
         << "authkey_policy = " << to_hex(k.policy) << "\n";
    return write_host_file(host_dir, kHostConf, conf.str());
}

}  // namespace vtpm::hoststate
