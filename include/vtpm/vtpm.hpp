// C++ API of libvtpm: RAII over the stable C ABI in vtpm.h, with
// std::span/std::string_view at the boundary and vtpm::Result for errors.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vtpm/result.hpp"
#include "vtpm/vtpm.h"

namespace vtpm {

/// A vTPM instance. At most one per process.
class Vtpm {
public:
    struct Options {
        bool tpm2 = true;
        std::string state_dir;
        uint32_t state_file_mode = 0640;
        std::vector<uint8_t> state_key;      // empty: unencrypted at rest
        std::vector<uint8_t> migration_key;  // empty: blobs not migration-encrypted
        bool auto_shutdown = true;
    };

    /// Open the instance (not powered on yet).
    static Result<Vtpm> open(const Options& o) {
        vtpm_options c{};
        c.struct_size = sizeof c;
        c.tpm_version = o.tpm2 ? VTPM_TPM_2_0 : VTPM_TPM_1_2;
        c.state_dir = o.state_dir.c_str();
        c.state_file_mode = o.state_file_mode;
        c.state_key = o.state_key.empty() ? nullptr : o.state_key.data();
        c.state_key_len = o.state_key.size();
        c.migration_key = o.migration_key.empty() ? nullptr : o.migration_key.data();
        c.migration_key_len = o.migration_key.size();
        c.flags = o.auto_shutdown ? 0 : VTPM_OPEN_NO_AUTO_SHUTDOWN;
        vtpm_t* t = nullptr;
        if (uint32_t r = vtpm_open(&c, &t); r != 0) return Error{r, vtpm_open_error()};
        return Vtpm(t);
    }

    /// Power on; delete_volatile as CMD_INIT's flag.
    Result<void> init(bool delete_volatile = false) { return check(vtpm_init(h_.get(), delete_volatile)); }
    /// Power off.
    Result<void> stop() { return check(vtpm_stop(h_.get())); }

    /// Execute one TPM command and return the response.
    Result<std::vector<uint8_t>> process(std::span<const uint8_t> cmd) {
        std::vector<uint8_t> rsp(4096 + 16);
        size_t n = 0;
        if (uint32_t r = vtpm_process(h_.get(), cmd.data(), cmd.size(), rsp.data(), rsp.size(), &n); r != 0)
            return err(r);
        rsp.resize(n);
        return rsp;
    }

    /// One raw control-channel message in, its response out.
    Result<std::vector<uint8_t>> ctrl(std::span<const uint8_t> msg) {
        uint8_t* out = nullptr;
        size_t n = 0;
        if (uint32_t r = vtpm_ctrl(h_.get(), msg.data(), msg.size(), &out, &n); r != 0) return err(r);
        return take(out, n);
    }

    /// A state blob in swtpm's migration format.
    Result<std::vector<uint8_t>> get_state_blob(vtpm_blob_type type, bool decrypted = true) {
        uint8_t* out = nullptr;
        size_t n = 0;
        uint32_t flags = 0;
        if (uint32_t r = vtpm_get_state_blob(h_.get(), type, decrypted, &out, &n, &flags); r != 0) return err(r);
        return take(out, n);
    }

    /// Hand over a state blob (TPM stopped).
    Result<void> set_state_blob(vtpm_blob_type type, std::span<const uint8_t> blob, uint32_t state_flags = 0) {
        return check(vtpm_set_state_blob(h_.get(), type, state_flags, blob.data(), blob.size()));
    }

    vtpm_t* handle() const { return h_.get(); }

private:
    struct Closer {
        void operator()(vtpm_t* t) const noexcept { vtpm_close(t); }
    };
    explicit Vtpm(vtpm_t* t) : h_(t) {}
    Error err(uint32_t r) const { return Error{r, vtpm_last_error(h_.get())}; }
    Result<void> check(uint32_t r) const {
        if (r != 0) return err(r);
        return {};
    }
    static std::vector<uint8_t> take(uint8_t* p, size_t n) {
        std::vector<uint8_t> v(p, p + n);
        vtpm_free(p);
        return v;
    }
    std::unique_ptr<vtpm_t, Closer> h_;
};

/// A verifier's verdict on a VM's evidence and the step-by-step report.
struct Verdict {
    bool ok = false;
    std::string report_json;
};

/// vtpm_verify_evidence(): `p.struct_size` is filled in here. An error only
/// for unusable parameters; a failed check is a Verdict with ok = false.
inline Result<Verdict> verify_evidence(vtpm_verify_params p) {
    p.struct_size = sizeof p;
    char* json = nullptr;
    const uint32_t r = vtpm_verify_evidence(&p, &json);
    std::string report = json ? json : "";
    vtpm_free(json);
    if (r != 0 && r != 9) return Error{r, report};
    return Verdict{r == 0, report};
}

}  // namespace vtpm
