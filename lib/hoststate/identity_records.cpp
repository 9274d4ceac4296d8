#include "hoststate/identity_records.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "util/durable_file.hpp"
#include "util/key_value.hpp"
#include "util/uuid.hpp"

namespace vtpm::hoststate {

std::string format_identity_record(const IdentityRecord& r) {
    std::ostringstream o;
    o << "# vTPM identity record, written by vtpm-attest issue\n"
      << "vm_uuid = " << r.vm_uuid << "\n"
      << "generation = " << r.generation << "\n"
      << "vaik_name = " << to_hex(r.vaik_name) << "\n";
    if (r.pending) o << "pending_generation = " << *r.pending << "\n";
    return o.str();
}

Result<IdentityRecord> parse_identity_record(std::string_view text) {
    auto lines = parse_key_values(text, "identity record");
    if (!lines) return make_error(rc::kBadParameter, lines.error().message);
    IdentityRecord r;
    bool have_uuid = false, have_gen = false, have_pending = false, have_name = false;
    for (const auto& kv : *lines) {
        const std::string where = "identity record:" + std::to_string(kv.line) + ": ";
        auto number = [&](uint64_t& out) -> bool {
            const auto& v = kv.value;
            if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) return false;
            out = std::stoull(v);
            return true;
        };
        // A key given twice is refused: which of the two would count is
        // exactly what an edited record would try to blur.
        auto first = [&](bool& seen) {
            const bool was = seen;
            seen = true;
            return !was;
        };
        if (kv.key == "vm_uuid") {
            auto u = canonical_uuid(kv.value);
            if (!u || !first(have_uuid))
                return make_error(rc::kBadParameter, where + (u ? "a second vm_uuid" : u.error().message));
            r.vm_uuid = *u;
        } else if (kv.key == "generation") {
            if (!number(r.generation) || !first(have_gen))
                return make_error(rc::kBadParameter, where + "a bad or second generation");
        } else if (kv.key == "pending_generation") {
            uint64_t p = 0;
            if (!number(p) || !first(have_pending))
                return make_error(rc::kBadParameter, where + "a bad or second pending_generation");
            r.pending = p;
        } else if (kv.key == "vaik_name") {
            auto b = from_hex(kv.value);
            if (!b || !first(have_name)) return make_error(rc::kBadParameter, where + "a bad or second vaik_name");
            r.vaik_name = std::move(*b);
        }
    }
    if (!have_uuid || !have_gen) return make_error(rc::kBadParameter, "identity record: vm_uuid or generation missing");
    return r;
}

Result<IdentityRecords> IdentityRecords::open_locked(const std::string& host_dir) {
    const std::string dir = host_dir + "/vms";
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return make_error(rc::kFail, "cannot create " + dir + ": " + std::strerror(errno));
    const std::string lock = dir + "/.lock";
    UniqueFd fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return make_error(rc::kFail, "cannot open " + lock + ": " + std::strerror(errno));
    // Blocking: concurrent issuances for different VMs queue here briefly.
    while (flock(fd.get(), LOCK_EX) != 0)
        if (errno != EINTR) return make_error(rc::kFail, "cannot lock " + lock + ": " + std::strerror(errno));
    return IdentityRecords(dir, std::move(fd));
}

std::string IdentityRecords::path_of(const std::string& uuid) const { return dir_ + "/" + uuid + ".record"; }

Result<void> IdentityRecords::save(const IdentityRecord& r) const {
    const std::string text = format_identity_record(r), path = path_of(r.vm_uuid);
    return replace_file_durably(path + ".tmp", path,
                                       ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()), 0600);
}

uint64_t next_identity_generation(const std::optional<IdentityRecord>& rec, uint64_t vtpm_generation) {
    uint64_t last = vtpm_generation;
    if (rec) last = std::max({last, rec->generation, rec->pending.value_or(0)});
    return last + 1;
}

std::optional<std::string> generation_clash(const std::optional<IdentityRecord>& rec, uint64_t vtpm_generation,
                                            const std::optional<Bytes>& vtpm_vaik_name) {
    if (!rec) {
        if (vtpm_generation == 0) return std::nullopt;
        return "the vTPM carries identity generation " + std::to_string(vtpm_generation) +
               " but this host has no record of the VM (issued elsewhere, or the record was lost)";
    }
    const bool matches = vtpm_generation == rec->generation || (rec->pending && vtpm_generation == *rec->pending);
    if (!matches)
        return "the vTPM state is at identity generation " + std::to_string(vtpm_generation) +
               " but the host last issued generation " + std::to_string(rec->generation) +
               ": this state is a clone or an older copy of the VM's vTPM";
    if (vtpm_vaik_name && !rec->vaik_name.empty() && *vtpm_vaik_name != rec->vaik_name)
        return "the vTPM holds a different vAIK (" + to_hex(*vtpm_vaik_name).substr(0, 16) +
               "...) than the one the host certified (" + to_hex(rec->vaik_name).substr(0, 16) + "...)";
    return std::nullopt;
}

}  // namespace vtpm::hoststate
