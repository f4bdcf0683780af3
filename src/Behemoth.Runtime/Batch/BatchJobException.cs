namespace Behemoth.Runtime.Batch;

/// <summary>
/// A batch job cannot start or finish: a results file that is not this job's, shards that do not merge (an id twice, an
/// id missing), a bad <c>--shard</c>. Bad input lines never raise it; they become error records.
/// </summary>
public sealed class BatchJobException(string message, Exception? inner = null) : Behemoth.Package.BehemothException(message, inner);
