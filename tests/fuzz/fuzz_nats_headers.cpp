// libFuzzer target for a NATS bridge's header reader (daemon/gateway/nats_messages.cpp),
// against libnats' own parser: the input is the header block of a received message (what any
// publisher on an imported subject can send). The reader must read it exactly as libnats
// does: for the keys a bridge looks up, for the keys the block itself names and for a few
// others, what NatsHeaderReader::find() returns equals what natsMsgHeader_Get() returns on a
// second copy of the message (both absent, or the same text), whether the reader parsed the
// block itself or left it to libnats. And what nats_message() writes, libnats reads back: a
// key and a value made from the input (without the characters a header cannot hold) come
// back as written. Nothing may crash or read out of bounds (ASan and UBSan are on); a
// difference aborts, which libFuzzer reports with the input that caused it.
#include "gateway/nats_messages.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

// libnats' constructor of a received message, headers in front of the payload (the reader's
// implementation uses it too; nats_messages.hpp says why).
// NOLINTBEGIN(readability-identifier-naming): libnats' names
extern "C" natsStatus natsMsg_create(natsMsg** newMsg, const char* subject, int subjLen,
                                     const char* reply, int replyLen, const char* buf, int bufLen,
                                     int hdrLen);
// NOLINTEND(readability-identifier-naming)

namespace {

using namespace shmbus::gateway;

constexpr std::size_t kMaxBlock = std::size_t{8} * 1024;

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

/// `value` as text, or a marker no header value can be (values hold no CR or LF).
std::string text(const char* value) {
    return value != nullptr ? value : "\r\n(none)";
}

std::string libnats_value(natsMsg* m, const std::string& key) {
    const char* v = nullptr;
    return text(natsMsgHeader_Get(m, key.c_str(), &v) == NATS_OK ? v : nullptr);
}

/// The names before a colon at the start of the block's lines (at most `limit`).
std::vector<std::string> keys_named(std::string_view block, std::size_t limit) {
    std::vector<std::string> keys;
    std::size_t start = 0;
    while (keys.size() < limit && start < block.size()) {
        const std::size_t eol = block.find("\r\n", start);
        const std::string_view line =
            block.substr(start, eol == std::string_view::npos ? eol : eol - start);
        if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
            const std::string key{line.substr(0, colon)};
            keys.push_back(key);
        }
        if (eol == std::string_view::npos) {
            break;
        }
        start = eol + 2;
    }
    return keys;
}

void read_as_libnats_does(std::string_view block) {
    const std::string bytes = std::string{block} + "payload";
    natsMsg* mine = nullptr;
    natsMsg* theirs = nullptr;
    for (natsMsg** m : {&mine, &theirs}) {
        require(natsMsg_create(m, "s", 1, nullptr, 0, bytes.data(), static_cast<int>(bytes.size()),
                               static_cast<int>(block.size())) == NATS_OK);
    }
    NatsHeaderReader reader;
    reader.read(mine);
    std::vector<std::string> keys = {"Shmbus-Origin", "Shmbus-Idle", "Nats-Msg-Id",
                                     "Status",        "Description", "K"};
    for (auto& k : keys_named(block, 4)) {
        // libnats' names are C strings, shorter than the reader's fallback takes.
        if (!k.empty() && k.find('\0') == std::string::npos && k.size() < 100) {
            keys.push_back(std::move(k));
        }
    }
    const auto every_name = keys_named(block, block.size());
    for (const auto& key : keys) {
        // libnats 3.4 compares only the length of the key looked up (strncmp) once two keys'
        // hashes agree, so a key that begins another one the block holds may find that one's
        // value: its error, which the reader does not copy. Such keys are not compared.
        const bool begins_another =
            std::any_of(every_name.begin(), every_name.end(), [&key](const std::string& other) {
                return other.size() > key.size() && other.compare(0, key.size(), key) == 0;
            });
        if (!begins_another) {
            require(text(reader.find(key.c_str())) == libnats_value(theirs, key));
        }
    }
    require(std::string_view{natsMsg_GetData(mine),
                             static_cast<std::size_t>(natsMsg_GetDataLength(mine))} == "payload");
    nats_free(mine);
    nats_free(theirs);
}

/// A header of the input's bytes, written by nats_message(), reads back through libnats.
void written_reads_back(std::string_view input) {
    const std::size_t cut = input.empty() ? 0 : static_cast<unsigned char>(input[0]) % 32;
    std::string key{
        input.substr(std::min<std::size_t>(1, input.size()),
                     std::min<std::size_t>(cut, input.size() > 1 ? input.size() - 1 : 0))};
    std::string value{input.substr(std::min(input.size(), 1 + key.size()))};
    const auto clean = [](std::string& s, std::string_view bad) {
        std::replace_if(
            s.begin(), s.end(), [bad](char c) { return bad.find(c) != std::string_view::npos; },
            'x');
    };
    constexpr std::string_view kWhitespace{" \t\v\f", 4};
    clean(key, std::string_view{"\r\n:\0", 4});
    clean(value, std::string_view{"\r\n\0", 3});
    // What a bridge writes: a key that does not start with a space, a value not padded.
    clean(key, kWhitespace);
    while (!value.empty() && kWhitespace.find(value.back()) != std::string_view::npos) {
        value.pop_back();
    }
    while (!value.empty() && kWhitespace.find(value.front()) != std::string_view::npos) {
        value.erase(value.begin());
    }
    if (key.empty() || value.empty() || key.size() >= 100) {
        return;
    }
    const NatsHeader headers[] = {{key, value}};
    const std::size_t room = nats_encoded_size(headers);
    std::vector<std::byte> buf(room + 3);
    natsMsg* m = nullptr;
    require(nats_message(&m, "subject", buf, room, 3, headers) == NATS_OK);
    require(libnats_value(m, key) == value);
    nats_free(m);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool opened = nats_Open(-1) == NATS_OK;
    require(opened);
    if (size > kMaxBlock) {
        return 0;
    }
    const std::string_view input{reinterpret_cast<const char*>(data), size};
    read_as_libnats_does(input);
    written_reads_back(input);
    return 0;
}
