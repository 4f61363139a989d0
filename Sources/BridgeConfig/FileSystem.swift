#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The little file-system work the config module does, on POSIX calls so that errors can name
/// the reason (`strerror`) and no Foundation is needed.
enum FileSystem {
    /// Config files bigger than this are refused before parsing.
    static let maximumFileSize = 16 << 20

    enum ReadError: Error {
        case system(String)
        case tooLarge
    }

    static func readFile(_ path: String) -> Result<[UInt8], ReadError> {
        guard let file = fopen(path, "rb") else { return .failure(.system(lastError())) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            bytes += chunk[..<count]
            if bytes.count > maximumFileSize { return .failure(.tooLarge) }
            if count < chunk.count {
                if ferror(file) != 0 { return .failure(.system(lastError())) }
                return .success(bytes)
            }
        }
    }

    static func currentDirectory() -> String {
        guard let pointer = getcwd(nil, 0) else { return "/" }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    private static func lastError() -> String {
        String(cString: strerror(errno))
    }
}

/// Lexical path arithmetic (no file-system access, symlinks left alone).
enum PathResolution {
    /// `path` made absolute against `base` (itself absolute), with `.` and `..` folded away.
    static func absolute(_ path: String, base: String) -> String {
        normalize(path.hasPrefix("/") ? path : base + "/" + path)
    }

    /// The folder part of an absolute path.
    static func directory(of path: String) -> String {
        var components = normalize(path).split(separator: "/")
        guard !components.isEmpty else { return "/" }
        components.removeLast()
        return "/" + components.joined(separator: "/")
    }

    static func normalize(_ path: String) -> String {
        var components: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": _ = components.popLast()
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}
