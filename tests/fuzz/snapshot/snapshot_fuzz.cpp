// Everything snapshot verification reads that an attacker can shape: the
// record inside a volatile state blob (from a saved image or a migration
// stream), the TPM structures inside it, and /proc/PID/maps text. A record
// that parses must re-encode to the same bytes; no signature may verify.
#include <cstdlib>
#include <string_view>

#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
#include "snapshot/guest_memory.hpp"
#include "snapshot/record.hpp"
#include "store/blob.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vtpm;
    ByteView in(data, size);
    auto check_record = [](ByteView b) {
        auto r = snapshot::parse_record(b);
        if (!r) return;
        if (snapshot::encode_record(*r) != Bytes(b.begin(), b.end())) std::abort();
        (void)snapshot::signed_message(*r);
        (void)snapshot::quote_qualifying_data(*r);
        (void)snapshot::pcr_values_digest(*r);
        // What the restore check unmarshals from a record.
        if (auto p = tpm::unmarshal_public(r->vaik_public)) (void)tpm::pkey_from_tpm_public(*p);
        (void)tpm::parse_attest(r->quote_attest);
        (void)tpm::unmarshal_signature(r->quote_signature);
        (void)tpm::unmarshal_signature(r->host_signature);
    };
    check_record(in);
    // As the record TLV of a volatile blob.
    if (auto rec = store::find_blob_tlv(in, snapshot::kTagSnapshotRecord)) check_record(*rec);
    // As maps text.
    const auto maps = snapshot::parse_maps(std::string_view(reinterpret_cast<const char*>(data), size));
    for (const auto& e : snapshot::guest_ram_candidates(maps, 4096))
        if (e.end <= e.start || e.offset != 0) std::abort();
    return 0;
}
