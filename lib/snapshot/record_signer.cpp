#include "snapshot/record_signer.hpp"

#include "tpm/objects.hpp"
#include "hosttpm/esys.hpp"
#include "hosttpm/host_keys.hpp"
#include "hosttpm/host_ops.hpp"
#include "tpm/public_key.hpp"
#include "hoststate/host_files.hpp"
#include "util/durable_file.hpp"

namespace vtpm::snapshot {

namespace {

class HostTpmSigner final : public RecordSigner {
public:
    HostTpmSigner(std::string dir, std::string tcti, TPML_PCR_SELECTION pcrs, Bytes name, vtpm::PkeyPtr key)
        : dir_(std::move(dir)), tcti_(std::move(tcti)), pcrs_(pcrs), name_(std::move(name)), key_(std::move(key)) {}

    const Bytes& key_name() const override { return name_; }

    Result<Bytes> sign(ByteView message) override {
        // One connection per record: the host TPM is shared by every bridge.
        auto tpm = hosttpm::Esys::open(tcti_);
        if (!tpm) return make_error(rc::kFail, "host TPM (" + tcti_ + "): " + tpm.error().message);
        auto sig = hosttpm::authkey_sign(**tpm, sha256(message), pcrs_);
        if (!sig) return sig.error();
        return tpm::marshal_signature(*sig);
    }

    Result<void> verify(ByteView key_name, ByteView message, ByteView signature) const override {
        if (!std::equal(key_name.begin(), key_name.end(), name_.begin(), name_.end()))
            return make_error(rc::kFail, "the record was signed by another host key (name " + to_hex(key_name) +
                                             "), not this host's AuthKey " + to_hex(name_));
        auto sig = tpm::unmarshal_signature(signature);
        if (!sig) return make_error(rc::kFail, "the record's host signature is malformed: " + sig.error().message);
        auto ok = tpm::verify_signature(key_.get(), message, *sig);
        if (!ok) return make_error(rc::kFail, "the record's host signature does not verify: " + ok.error().message);
        return {};
    }

    std::string describe() const override { return "host AuthKey (" + dir_ + ", " + tcti_ + ")"; }

private:
    std::string dir_, tcti_;
    TPML_PCR_SELECTION pcrs_;
    Bytes name_;
    vtpm::PkeyPtr key_;
};

}  // namespace

Result<std::unique_ptr<RecordSigner>> open_host_signer(const std::string& host_dir, const std::string& tcti) {
    auto cfg = hoststate::read_host_config(host_dir);
    if (!cfg) return cfg.error();
    auto raw = read_whole_file(hoststate::host_path(host_dir, hoststate::kAuthKeyPub));
    if (!raw) return make_error(rc::kFail, host_dir + "/authkey.pub: " + raw.error().message +
                                               " (run vtpm-host provision first)");
    auto pub = tpm::unmarshal_public(*raw);
    if (!pub) return make_error(rc::kFail, host_dir + "/authkey.pub: " + pub.error().message);
    auto name = tpm::object_name(*pub);
    if (!name) return name.error();
    // Records are checked against this file: it must be the AuthKey that
    // lives in this host's TPM, or a replaced HOSTDIR would let anyone sign
    // records with a key of their own.
    auto host = hosttpm::Esys::open(tcti);
    if (!host)
        return make_error(rc::kFail, "host TPM (" + tcti + "): " + host.error().message +
                                         ": cannot check that " + host_dir + "/authkey.pub is its AuthKey");
    auto live = hosttpm::read_persistent(**host, hosttpm::kAuthKeyHandle);
    if (!live)
        return make_error(rc::kFail, "host TPM (" + tcti + "): no AuthKey at " + hex32(hosttpm::kAuthKeyHandle) +
                                         ": " + live.error().message);
    auto live_name = tpm::object_name(live->publicArea);
    if (!live_name) return live_name.error();
    if (*live_name != *name)
        return make_error(rc::kFail, host_dir + "/authkey.pub (name " + to_hex(*name).substr(0, 16) +
                                         "...) is not the AuthKey in the host TPM (name " +
                                         to_hex(*live_name).substr(0, 16) +
                                         "...): the host directory was replaced, or it belongs to another host");
    auto key = tpm::pkey_from_tpm_public(*pub);
    if (!key) return key.error();
    return std::unique_ptr<RecordSigner>(
        std::make_unique<HostTpmSigner>(host_dir, tcti, cfg->authkey_pcrs, std::move(*name), std::move(*key)));
}

}  // namespace vtpm::snapshot
