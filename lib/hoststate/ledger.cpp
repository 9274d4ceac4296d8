#include "hoststate/ledger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/durable_file.hpp"
#include "util/key_value.hpp"

namespace vtpm::hoststate {

Result<LedgerEntry> parse_ledger_entry(std::string_view text, const std::string& source) {
    auto lines = parse_key_values(text, source);
    if (!lines) return lines.error();
    LedgerEntry e;
    bool have_gen = false, have_root = false;
    for (const auto& kv : *lines) {
        if (kv.key == "generation") {
            char* end = nullptr;
            errno = 0;
            e.generation = std::strtoull(kv.value.c_str(), &end, 10);
            have_gen = errno == 0 && !kv.value.empty() && kv.value[0] != '-' && *end == '\0';
        } else if (kv.key == "root") {
            auto r = from_hex(kv.value);
            have_root = r && r->size() == 32;
            if (have_root) std::memcpy(e.root.data(), r->data(), 32);
        }
    }
    if (!have_gen || !have_root) return make_error(rc::kFail, source + " is damaged (no generation or root)");
    return e;
}

Result<std::optional<LedgerEntry>> Ledger::latest(const std::string& uuid) const {
    const std::string path = dir_ + "/" + uuid + ".snapshot";
    auto raw = read_whole_file(path);
    if (!raw) {
        if (raw.code() == rc::kRetry) return std::optional<LedgerEntry>{};
        return make_error(rc::kFail, path + ": " + raw.error().message);
    }
    auto e = parse_ledger_entry(std::string_view(reinterpret_cast<const char*>(raw->data()), raw->size()), path);
    if (!e) return e.error();
    return std::optional<LedgerEntry>(*e);
}

Result<void> Ledger::commit(const std::string& uuid, const LedgerEntry& e) const {
    if (mkdir(dir_.c_str(), 0750) != 0 && errno != EEXIST)
        return make_error(rc::kFail, "cannot create " + dir_ + ": " + std::strerror(errno));
    const std::string text = "vm_uuid = " + uuid + "\ngeneration = " + std::to_string(e.generation) +
                             "\nroot = " + to_hex(e.root) + "\n";
    const std::string path = dir_ + "/" + uuid + ".snapshot";
    return replace_file_durably(path + ".tmp", path,
                                       ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()), 0640);
}

void Ledger::keep_leaves(const std::string& uuid, const std::vector<Digest>& leaves) const {
    const std::string path = dir_ + "/" + uuid + ".leaves", tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
    if (!fd) return;
    const auto* p = reinterpret_cast<const char*>(leaves.data());
    size_t left = leaves.size() * sizeof(Digest);
    while (left > 0) {
        const ssize_t n = ::write(fd.get(), p, left);
        if (n <= 0) {
            ::unlink(tmp.c_str());
            return;
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
}

std::optional<std::vector<Digest>> Ledger::leaves_for(const std::string& uuid, const Digest& root) const {
    auto raw = read_whole_file(dir_ + "/" + uuid + ".leaves");
    if (!raw || raw->size() % sizeof(Digest) != 0) return std::nullopt;
    std::vector<Digest> leaves(raw->size() / sizeof(Digest));
    std::memcpy(leaves.data(), raw->data(), raw->size());
    if (merkle::merkle_root(leaves) != root) return std::nullopt;
    return leaves;
}

}  // namespace vtpm::hoststate
