// RAII for tpm2-tss: the TCTI loaded from a configuration string, the ESYS
// context, memory ESYS hands back, and transient object/session handles
// (flushed on destruction so the hardware TPM's few slots never leak).
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <memory>
#include <string>
#include <utility>

#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// Production default: the kernel's resource manager.
inline constexpr const char* kDefaultTcti = "device:/dev/tpmrm0";

/// "What failed: TSS error text (0xRC)".
std::string tss_error(const std::string& what, TSS2_RC rc);

struct EsysFreeDeleter {
    void operator()(void* p) const noexcept { Esys_Free(p); }
};
/// Memory returned by an Esys_* call.
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFreeDeleter>;

/// An open connection to a TPM: TCTI + ESYS context.
class Esys {
public:
    /// Load the TCTI named by `tcti_conf` (e.g. "swtpm:host=127.0.0.1,port=2321")
    /// and start ESYS on it.
    static Result<std::unique_ptr<Esys>> open(const std::string& tcti_conf);
    ~Esys();
    Esys(const Esys&) = delete;
    Esys& operator=(const Esys&) = delete;

    ESYS_CONTEXT* ctx() const { return ctx_; }

    Esys(TSS2_TCTI_CONTEXT* tcti, ESYS_CONTEXT* ctx) : tcti_(tcti), ctx_(ctx) {}

private:
    TSS2_TCTI_CONTEXT* tcti_;
    ESYS_CONTEXT* ctx_;
};

/// A transient ESYS handle (object or session), flushed when destroyed.
class FlushedHandle {
public:
    FlushedHandle() = default;
    FlushedHandle(ESYS_CONTEXT* ctx, ESYS_TR h) : ctx_(ctx), h_(h) {}
    FlushedHandle(FlushedHandle&& o) noexcept : ctx_(o.ctx_), h_(std::exchange(o.h_, ESYS_TR_NONE)) {}
    FlushedHandle& operator=(FlushedHandle&& o) noexcept {
        if (this != &o) {
            reset();
            ctx_ = o.ctx_;
            h_ = std::exchange(o.h_, ESYS_TR_NONE);
        }
        return *this;
    }
    FlushedHandle(const FlushedHandle&) = delete;
    FlushedHandle& operator=(const FlushedHandle&) = delete;
    ~FlushedHandle() { reset(); }

    ESYS_TR get() const { return h_; }
    void reset() {
        if (h_ != ESYS_TR_NONE && ctx_) Esys_FlushContext(ctx_, h_);
        h_ = ESYS_TR_NONE;
    }
    /// The handle stays loaded (e.g. made persistent); only forget it.
    ESYS_TR release() { return std::exchange(h_, ESYS_TR_NONE); }

private:
    ESYS_CONTEXT* ctx_ = nullptr;
    ESYS_TR h_ = ESYS_TR_NONE;
};

/// An ESYS handle for an object that outlives us (persistent key, NV index):
/// closed (ESYS forgets it), never flushed.
class TrHandle {
public:
    TrHandle() = default;
    TrHandle(ESYS_CONTEXT* ctx, ESYS_TR h) : ctx_(ctx), h_(h) {}
    TrHandle(TrHandle&& o) noexcept : ctx_(o.ctx_), h_(std::exchange(o.h_, ESYS_TR_NONE)) {}
    TrHandle& operator=(TrHandle&& o) noexcept {
        if (this != &o) {
            reset();
            ctx_ = o.ctx_;
            h_ = std::exchange(o.h_, ESYS_TR_NONE);
        }
        return *this;
    }
    TrHandle(const TrHandle&) = delete;
    TrHandle& operator=(const TrHandle&) = delete;
    ~TrHandle() { reset(); }
    ESYS_TR get() const { return h_; }
    void reset() {
        if (h_ != ESYS_TR_NONE && ctx_) Esys_TR_Close(ctx_, &h_);
        h_ = ESYS_TR_NONE;
    }

private:
    ESYS_CONTEXT* ctx_ = nullptr;
    ESYS_TR h_ = ESYS_TR_NONE;
};

/// ESYS handle for a persistent object or NV index; rc::kRetry if absent.
Result<TrHandle> tr_from_tpm(Esys& tpm, uint32_t tpm_handle);

}  // namespace vtpm::hosttpm
