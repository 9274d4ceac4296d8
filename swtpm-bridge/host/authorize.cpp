#include "host/authorize.hpp"

#include <syslog.h>
#include <sys/stat.h>

#include <cstdio>

#include "hoststate/host_files.hpp"
#include "hosttpm/host_ops.hpp"
#include "hosttpm/host_policy.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
#include "util/durable_file.hpp"

namespace vtpm::host {

namespace {

int fail(const std::string& msg) {
    std::fprintf(stderr, "vtpm-host: authorize: %s\n", msg.c_str());
    syslog(LOG_AUTHPRIV | LOG_WARNING, "authorize refused: %s", msg.c_str());
    return 1;
}

}  // namespace

int authorize_main(const std::string& dir, const std::string& owner_file, const std::optional<std::string>& tcti,
                   const std::string& pcr_digest_hex, bool replace) {
    openlog("vtpm-host", LOG_PID, LOG_AUTHPRIV);
    auto cfg = hoststate::read_host_config(dir);
    if (!cfg) return fail(cfg.error().message);
    auto pinned = hoststate::read_owner_key(dir);
    if (!pinned) return fail(pinned.error().message);
    auto pem = read_whole_file(owner_file);
    if (!pem) return fail(owner_file + ": " + pem.error().message);
    auto key = tpm::parse_pem_key(*pem, true, owner_file);
    if (!key) return fail(key.error().message + " (approving needs the owner's private key)");
    // Only the key the AuthKey is bound to can approve anything the TPM accepts.
    if (EVP_PKEY_eq(key->get(), pinned->get()) != 1)
        return fail(owner_file + " is not the owner key this host was provisioned with (" +
                    hoststate::host_path(dir, hoststate::kOwnerPem) + ")");

    std::unique_ptr<hosttpm::Esys> esys;
    Bytes digest;
    if (tcti) {
        auto t = hosttpm::Esys::open(*tcti);
        if (!t) return fail(t.error().message);
        esys = std::move(*t);
        auto d = hosttpm::pcr_digest(*esys, cfg->authkey_pcrs);
        if (!d) return fail(d.error().message);
        digest = std::move(*d);
    } else {
        auto d = from_hex(pcr_digest_hex);
        if (!d || d->size() != 32) return fail("--pcr-digest must be 64 hex digits (SHA-256 of the PCR values)");
        digest = std::move(*d);
    }
    auto approval = hosttpm::approve(key->get(), cfg->authkey_pcrs, digest);
    if (!approval) return fail(approval.error().message);

    std::vector<hoststate::Approval> list;
    struct stat st {};
    const std::string path = hoststate::host_path(dir, hoststate::kAuthorization);
    if (!replace && stat(path.c_str(), &st) == 0) {
        auto old = hoststate::read_authorization(dir);
        if (!old) return fail(old.error().message + " (--replace starts a new list)");
        for (auto& a : *old)
            if (a.pcr_digest != digest) list.push_back(std::move(a));
    }
    list.push_back(std::move(*approval));
    size_t dropped = 0;
    while (list.size() > hoststate::kMaxApprovals) list.erase(list.begin()), ++dropped;
    if (esys) {
        // The TPM checks what the daemon will load: every approval kept.
        auto checked = hosttpm::HostPolicy::check(*esys, pinned->get(), cfg->authkey_pcrs, list);
        if (!checked)
            return fail(checked.error().message + (replace ? "" : " (an approval kept from another PCR selection or "
                                                                  "owner key? --replace starts a new list)"));
    }
    if (auto w = hoststate::write_authorization(dir, list); !w) return fail(w.error().message);
    const std::string pcrs = tpm::pcr_list_text(tpm::selected_pcrs(cfg->authkey_pcrs, TPM2_ALG_SHA256));
    std::printf("approved the host state with sha256 PCRs %s digest %s%s\n%zu approval(s) in %s%s\n", pcrs.c_str(),
                to_hex(digest).c_str(), tcti ? " (the PCRs now)" : "", list.size(), path.c_str(),
                dropped ? " (the oldest dropped)" : "");
    syslog(LOG_AUTHPRIV | LOG_NOTICE, "approved host state: sha256 PCRs %s digest %s; %zu approval(s) kept",
           pcrs.c_str(), to_hex(digest).c_str(), list.size());
    return 0;
}

}  // namespace vtpm::host
