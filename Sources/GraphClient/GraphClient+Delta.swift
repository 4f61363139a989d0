import Transport

extension GraphClient {
    /// One page of a delta query: `pathOrLink` is the first query's path (e.g.
    /// `/users/{id}/mailFolders/inbox/messages/delta`) or an `@odata.nextLink`/`@odata.deltaLink`
    /// Graph returned. Returns the body (`value`, then `@odata.nextLink` or `@odata.deltaLink`);
    /// counted as operation `delta`. A `410` (`SyncStateNotFound`, `resyncRequired`) is thrown as a
    /// ``GraphError`` with status 410: the caller takes a new baseline.
    public func deltaPage(_ pathOrLink: String) async throws -> [UInt8] {
        try await send("GET", pathOrLink, operation: "delta").body
    }
}

extension GraphError {
    /// Graph forgot the delta state (`410`, `SyncStateNotFound`, or a `resyncRequired` code): only a new baseline helps.
    public var isDeltaStateLost: Bool {
        if status == 410 { return true }
        let code = (code ?? "").lowercased()
        return code.contains("syncstatenotfound") || code.contains("resyncrequired") || code.contains("syncstateinvalid")
    }
}
