#include "hoststate/host_files.hpp"

#include <sstream>
#include <vector>

#include "tpm/objects.hpp"
#include "util/durable_file.hpp"

namespace vtpm::hoststate {

Result<HostConfig> read_host_config(const std::string& host_dir) {
    auto bytes = read_whole_file(host_dir + "/" + kHostConf);
    if (!bytes)
        return make_error(
            rc::kFail, host_dir + "/" + kHostConf + ": " + bytes.error().message + " (run vtpm-host provision first)");
    std::istringstream in(std::string(bytes->begin(), bytes->end()));
    std::string line;
    std::vector<unsigned> pcrs;
    while (std::getline(in, line)) {
        if (line.rfind("authkey_pcrs = ", 0) != 0) continue;
        auto parsed = tpm::parse_pcr_list(line.substr(15));
        if (!parsed) return make_error(rc::kFail, host_dir + "/host.conf: bad authkey_pcrs");
        pcrs = std::move(*parsed);
    }
    if (pcrs.empty()) return make_error(rc::kFail, host_dir + "/host.conf has no authkey_pcrs");
    return HostConfig{tpm::pcr_selection(TPM2_ALG_SHA256, pcrs)};
}

Result<void> write_host_file(const std::string& host_dir, const std::string& name, const std::string& text,
                             unsigned mode) {
    const std::string p = host_dir + "/" + name;
    return replace_file_durably(p + ".tmp", p, ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                                static_cast<mode_t>(mode));
}

}  // namespace vtpm::hoststate
