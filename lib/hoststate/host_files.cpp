#include "hoststate/host_files.hpp"

#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>
#include <vector>

#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
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

namespace {

constexpr size_t kMaxSignature = 1024;

Result<Bytes> hex_field(std::string_view tok, size_t min, size_t max, const char* what) {
    auto b = from_hex(tok);
    if (!b || b->size() < min || b->size() > max) return make_error(rc::kFail, std::string("bad ") + what);
    return std::move(*b);
}

}  // namespace

std::string encode_authorization(const std::vector<Approval>& approvals) {
    std::ostringstream o;
    o << "# Host states the owner approved, oldest first (vtpm-host authorize).\n"
      << "# approved = PCR_DIGEST AUTHKEY_POLICY_SIGNATURE UNSEAL_POLICY_SIGNATURE UNIX_TIME\n";
    for (const auto& a : approvals)
        o << "approved = " << to_hex(a.pcr_digest) << " " << to_hex(a.authkey_signature) << " "
          << to_hex(a.unseal_signature) << " " << a.time << "\n";
    return o.str();
}

Result<std::vector<Approval>> parse_authorization(std::string_view text) {
    std::vector<Approval> out;
    size_t lineno = 0;
    while (!text.empty()) {
        const size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++lineno;
        const std::string at = "line " + std::to_string(lineno) + ": ";
        if (line.empty() || line[0] == '#') continue;
        constexpr std::string_view kKey = "approved = ";
        if (line.substr(0, kKey.size()) != kKey) return make_error(rc::kFail, at + "not an 'approved = ...' line");
        line.remove_prefix(kKey.size());
        std::vector<std::string_view> tok;
        while (!line.empty() && tok.size() < 5) {
            const size_t sp = line.find(' ');
            tok.push_back(line.substr(0, sp));
            line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
        }
        if (tok.size() != 4) return make_error(rc::kFail, at + "an approval has four fields");
        Approval a;
        auto d = hex_field(tok[0], 32, 32, "PCR digest");
        auto k = hex_field(tok[1], 1, kMaxSignature, "AuthKey policy signature");
        auto u = hex_field(tok[2], 1, kMaxSignature, "unseal policy signature");
        if (!d || !k || !u) return make_error(rc::kFail, at + (!d ? d : !k ? k : u).error().message);
        a.pcr_digest = std::move(*d);
        a.authkey_signature = std::move(*k);
        a.unseal_signature = std::move(*u);
        const auto t = tok[3];
        if (t.empty() || t.size() > 19 ||
            std::from_chars(t.data(), t.data() + t.size(), a.time).ec != std::errc{} ||
            t.find_first_not_of("0123456789") != std::string_view::npos)
            return make_error(rc::kFail, at + "bad time");
        for (const auto& b : out)
            if (b.pcr_digest == a.pcr_digest) return make_error(rc::kFail, at + "a PCR digest approved twice");
        if (out.size() == kMaxApprovals)
            return make_error(rc::kFail, at + "more than " + std::to_string(kMaxApprovals) + " approvals");
        out.push_back(std::move(a));
    }
    if (out.empty()) return make_error(rc::kFail, "no approved host state");
    return out;
}

Result<std::vector<Approval>> read_authorization(const std::string& host_dir) {
    const std::string path = host_path(host_dir, kAuthorization);
    auto bytes = read_whole_file(path);
    if (!bytes)
        return make_error(rc::kFail, path + ": " + bytes.error().message +
                                         " (the owner has approved no host state: run vtpm-host authorize)");
    auto a = parse_authorization(std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
    if (!a) return make_error(rc::kFail, path + ": " + a.error().message);
    return a;
}

Result<void> write_authorization(const std::string& host_dir, const std::vector<Approval>& approvals) {
    return write_host_file(host_dir, kAuthorization, encode_authorization(approvals));
}

Result<PkeyPtr> read_owner_key(const std::string& host_dir) {
    const std::string path = host_path(host_dir, kOwnerPem);
    auto bytes = read_whole_file(path);
    if (!bytes)
        return make_error(rc::kFail, path + ": " + bytes.error().message +
                                         " (the owner's policy key; vtpm-host provision --owner-key writes it)");
    return tpm::parse_pem_key(*bytes, false, path);
}

Result<void> write_owner_key(const std::string& host_dir, EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return make_error(rc::kFail, ossl_error("PEM encoding"));
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return write_host_file(host_dir, kOwnerPem, std::string(data, static_cast<size_t>(n)));
}

Result<UniqueFd> lock_host_dir(const std::string& host_dir, const std::string& holder) {
    const std::string path = host_path(host_dir, kDaemonLock);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd && errno == ENOENT) return UniqueFd();  // no HOSTDIR yet: nobody serves it
    if (!fd) return make_error(rc::kFail, "cannot open " + path + ": " + std::strerror(errno));
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK)
            return make_error(rc::kFail, "HOSTDIR " + host_dir + " is in use: " + holder + " holds its lock " + path);
        return make_error(rc::kFail, "cannot lock " + path + ": " + std::strerror(errno));
    }
    return fd;
}

}  // namespace vtpm::hoststate
