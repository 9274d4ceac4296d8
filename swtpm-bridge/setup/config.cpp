#include "setup/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "util/durable_file.hpp"
#include "util/key_value.hpp"

#ifndef VTPM_SYSCONFDIR
#define VTPM_SYSCONFDIR "/etc"
#endif

namespace vtpm::bridge {

namespace {

constexpr const char* kFileName = "vtpm-setup.conf";
constexpr const char* kSystemLocalCa = "/var/lib/libvtpm/localca";

bool exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

std::string default_config_path() {
    std::string user = std::string(g_get_user_config_dir()) + "/" + kFileName;
    if (exists(user)) return user;
    return std::string(VTPM_SYSCONFDIR) + "/" + kFileName;
}

std::string default_localca_dir() {
    // Never a home directory as a fallback: under libvirt that is root's.
    // A per-user CA is an explicit choice (--create-config-files).
    return kSystemLocalCa;
}

Result<SetupConfig> load_setup_config(const std::string& path, bool explicit_path) {
    SetupConfig c;
    c.localca_dir = default_localca_dir();
    std::ifstream in(path);
    if (!in) {
        if (!explicit_path && errno == ENOENT) return c;
        return make_error(rc::kFail, "cannot read config file " + path + ": " + std::strerror(errno));
    }
    c.path = path;
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto lines = parse_key_values(text, path);
    if (!lines) return lines.error();
    for (const auto& [n, key, value] : *lines) {
        if (key == "active_pcr_banks") c.active_pcr_banks = value;
        else if (key == "certificate_issuer") {
            if (value != "localca" && value != "hosttpm")
                return make_error(rc::kFail,
                                  path + ":" + std::to_string(n) + ": unknown certificate_issuer '" + value + "'");
            c.issuer = value;
        } else if (key == "localca_dir") c.localca_dir = value;
        else if (key == "host_socket") c.host_socket = value;
        else if (key == "host_dir" || key == "host_tcti")
            return make_error(rc::kFail, path + ":" + std::to_string(n) + ": " + key +
                                             ": vtpm-setup no longer opens the host TPM; run vtpm-hostd and set "
                                             "host_socket instead");
        else if (key == "platform_manufacturer") c.platform_manufacturer = value;
        else if (key == "platform_model") c.platform_model = value;
        else if (key == "platform_version") c.platform_version = value;
        else if (key == "cert_validity_days") {
            char* end = nullptr;
            const long d = std::strtol(value.c_str(), &end, 10);
            if (value.empty() || *end || d < -1 || d > 36500)
                return make_error(rc::kFail, path + ":" + std::to_string(n) + ": bad cert_validity_days");
            c.cert_validity_days = static_cast<int>(d);
        } else if (key == "create_certs_tool" || key == "create_certs_tool_config" ||
                   key == "create_certs_tool_options") {
            // swtpm_setup.conf keys: certificates are made in-process here.
        } else {
            return make_error(rc::kFail, path + ":" + std::to_string(n) + ": unknown key '" + key + "'");
        }
    }
    return c;
}

Result<void> create_config_files(const std::string& flags) {
    bool overwrite = false, root = false, skip = false;
    std::stringstream ss(flags);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
        tok = trim(tok);
        if (tok == "overwrite") overwrite = true;
        else if (tok == "root") root = true;
        else if (tok == "skip-if-exist") skip = true;
    }
    if (overwrite && skip)
        return make_error(rc::kBadParameter, "Error: overwrite and skip-if-exist cannot both be used");
    if (getuid() == 0 && !root)
        return make_error(
            rc::kFail,
            "Requiring the 'root' flag since the configuration files will be written to root's home directory");
    const std::string dir = g_get_user_config_dir();
    const std::string path = dir + "/" + kFileName;
    if (exists(path)) {
        if (skip) return {};
        if (!overwrite) return make_error(rc::kFail, "File " + path + " already exists. Refusing to overwrite.");
    }
    if (g_mkdir_with_parents(dir.c_str(), 0750) != 0)
        return make_error(rc::kFail, "cannot create " + dir + ": " + std::strerror(errno));
    const std::string text = "# vtpm-setup configuration (swtpm_setup.conf keys plus libvtpm's)\n"
                             "active_pcr_banks = sha256\n"
                             "certificate_issuer = localca\n"
                             "localca_dir = " + std::string(g_get_user_data_dir()) + "/libvtpm/localca\n"
                             "platform_manufacturer = libvtpm\n"
                             "platform_model = libvtpm vTPM\n"
                             "platform_version = 0.1\n"
                             "cert_validity_days = -1\n";
    return replace_file_durably(path + ".tmp", path,
                                       ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()), 0640);
}

}  // namespace vtpm::bridge
