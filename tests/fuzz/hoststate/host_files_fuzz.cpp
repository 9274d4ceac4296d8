// Fuzz the host's per-VM files as they are read back from HOSTDIR: the
// ledger (snapshot generations, identity records, EK bindings), the identity
// record file, an older version's EK binding file and the owner's approvals. A file an attacker with disk access edited
// must give a clean error, never a crash.
#include <cstdlib>
#include <string_view>

#include "hoststate/ek_bindings.hpp"
#include "hoststate/host_files.hpp"
#include "hoststate/identity_records.hpp"
#include "hoststate/ledger.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // The ledger: what parses prints back to text that parses the same.
    if (auto b = vtpm::hoststate::parse_ledger_book(text, "fuzz.ledger")) {
        const std::string again = vtpm::hoststate::format_ledger_book(*b);
        auto b2 = vtpm::hoststate::parse_ledger_book(again, "fuzz.ledger");
        if (!b2 || vtpm::hoststate::format_ledger_book(*b2) != again) std::abort();
    }
    if (auto r = vtpm::hoststate::parse_identity_record(text)) {
        // What parses must survive its own round trip.
        auto again = vtpm::hoststate::parse_identity_record(vtpm::hoststate::format_identity_record(*r));
        if (!again || again->generation != r->generation || again->vm_uuid != r->vm_uuid) std::abort();
    }
    constexpr const char* kVm = "3f0d9a4e-1111-2222-3333-444455556666";
    if (auto b = vtpm::hoststate::parse_ek_binding(text, kVm)) {
        auto again = vtpm::hoststate::parse_ek_binding(vtpm::hoststate::format_ek_binding(kVm, *b), kVm);
        if (!again || !(*again == *b)) std::abort();
    }
    if (auto a = vtpm::hoststate::parse_authorization(text)) {
        const std::string again = vtpm::hoststate::encode_authorization(*a);
        auto a2 = vtpm::hoststate::parse_authorization(again);
        if (!a2 || vtpm::hoststate::encode_authorization(*a2) != again) std::abort();
    }
    return 0;
}
