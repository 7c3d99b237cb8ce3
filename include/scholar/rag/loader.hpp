// scholar/rag/loader.hpp: documents from files, the first step of retrieval.
//
// load_documents reads one file or a folder (recursively, in sorted order) into Documents: plain
// text and Markdown files, gzip files (decompressed), and dictd dictionaries (one Document per
// entry). Files that cannot be used (not UTF-8, binary, empty, too large, unreadable) are skipped
// and reported, each with its reason, both in the result and as warnings through scholar::log;
// they never stop the rest from loading.
//
//   auto loaded = scholar::rag::load_documents("notes/");
//   for (const auto& p : loaded.problems) std::printf("skipped %s: %s\n", p.path.c_str(),
//                                                     p.reason.c_str());
//   for (const auto& d : loaded.documents) use(d.id, d.text);   // d.id: "sub/a.md"
//
//   // FOLDOC, as Debian's dict-foldoc installs it: ~15,000 entries
//   auto foldoc = scholar::rag::load_documents("/usr/share/dictd/foldoc.dict.dz");
//   // foldoc.documents[i].id == "foldoc.dict.dz#actor", .metadata.at("headword") == "actor"
//
// Thread-safety: load_documents is a pure function of the files; calls may run concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace scholar::rag {

/// A piece of text to retrieve from, and where it came from.
struct Document {
  /// Unique within one load, and the same on every load of the same tree: the path relative to
  /// the folder loaded ("sub/a.md", '/'-separated) or the file name for a single file;
  /// "<dictionary file>#<headword>" for a dictd entry ("#2", "#3", ... appended to repeats).
  std::string id;
  /// The path of the file the text was read from, as reached from the path given.
  std::string source;
  /// The text, valid UTF-8 (a leading byte-order mark removed; see LoaderOptions for newlines).
  std::string text;
  /// "format": "text", "markdown", "gzip" or "dictd"; dictd entries also have "headword" (as the
  /// index spells it) and, when other headwords lead to the same entry, "aliases" (one per line).
  std::map<std::string, std::string> metadata;
};

/// A file (or dictionary entry) that was skipped, and why.
struct LoadProblem {
  std::string path;    ///< relative like Document::id ("a/b.txt", "foldoc.dict.dz#entry")
  std::string reason;  ///< "not valid UTF-8 (byte 0xff at offset 12)", ...
};

/// What load_documents found.
struct LoadResult {
  std::vector<Document> documents;  ///< in sorted path order; dictd entries in index order
  std::vector<LoadProblem> problems;
};

/// How load_documents chooses and reads files.
struct LoaderOptions {
  /// Larger files are skipped with a reason: the size on disk, and for compressed files also the
  /// decompressed size (a dictd dictionary counts as a whole). Bytes.
  uint64_t max_file_bytes = uint64_t{64} << 20;
  /// In a folder, the plain-text files to load, by extension (compared ignoring ASCII case).
  /// Besides these, "*.gz" files are decompressed and "X.dict.dz" / "X.dict" with "X.index" beside
  /// them are read as dictd dictionaries; other files are ignored. A path given directly to
  /// load_documents is loaded whatever its extension.
  std::vector<std::string> extensions = {".txt", ".md"};
  /// Whether to enter folders and read files whose names start with '.'.
  bool include_hidden = false;
  /// Turns "\r\n" and lone "\r" into "\n" (Document::text is then what chunk offsets refer to).
  bool normalize_newlines = true;
};

/// Loads `path`: a file, or a folder searched recursively (symbolic links to files are followed,
/// to folders not). The documents come in sorted order of their relative paths, so ids and order
/// are the same on every run. Throws IoError naming the path if it does not exist (or is a folder
/// that cannot be listed), and ValueError if a folder holds no file of a kind listed above;
/// everything else about a file (or a subfolder) is a problem in the result (and a warning in the
/// log), not an exception.
LoadResult load_documents(const std::string& path, const LoaderOptions& options = {});

/// Decompresses gzip data (every member of a multi-member file, as gzip -d does). FormatError
/// naming `source` for data that is not gzip or is truncated or corrupt; ValueError if the output
/// would exceed `max_bytes`. (Exposed for tests and tools.)
std::string gunzip(std::string_view data, uint64_t max_bytes, std::string_view source);

/// A number in dictd's index notation: base-64 digits (A-Z a-z 0-9 + /, A = 0), most significant
/// first. FormatError for an empty string, another character, or a value above 2^53.
uint64_t decode_dictd_number(std::string_view digits);

}  // namespace scholar::rag
