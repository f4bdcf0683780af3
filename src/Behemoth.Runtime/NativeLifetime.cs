using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>
/// Guards an object that frees native memory (a session, a cache) against being freed while a call uses it: every
/// native call holds a <see cref="Lease"/>, and <see cref="Dispose"/> marks the object disposed, terminates the runs
/// in flight (<see cref="RunOptions.Terminate"/>) and waits for the leases to end before it frees anything.
/// </summary>
/// <remarks>
/// Freeing an InferenceSession or an OrtValue that a run is still reading is a native use-after-free: the process dies
/// with a segfault, which no catch can stop. So the check is made here, in managed code, before native code runs.
/// Do not dispose from a thread that holds a lease of the same object: it would wait for itself.
/// </remarks>
internal sealed class NativeLifetime
{
    private readonly object _gate = new();
    private readonly HashSet<RunOptions> _runs = [];
    private readonly bool _exclusive;
    private int _leases;
    private bool _disposing, _released;

    /// <param name="exclusive">At most one lease at a time (a KV cache holds one sequence, so two runs on it would corrupt it).</param>
    public NativeLifetime(bool exclusive = false) => _exclusive = exclusive;

    /// <summary>Dispose has begun: no new lease is given, and runs in flight are being terminated.</summary>
    public bool IsDisposing
    {
        get { lock (_gate) return _disposing; }
    }

    /// <summary>The native resources have been freed (after every lease ended).</summary>
    public bool IsReleased
    {
        get { lock (_gate) return _released; }
    }

    public void ThrowIfDisposed(object owner)
    {
        lock (_gate) ObjectDisposedException.ThrowIf(_disposing, owner);
    }

    /// <summary>A lease for one call; throws <see cref="ObjectDisposedException"/> once Dispose has begun.</summary>
    public Lease Enter(object owner)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposing, owner);
            if (_exclusive && _leases > 0)
                throw new InvalidOperationException($"the {owner.GetType().Name} is in use by another call; it serves one call at a time");
            _leases++;
        }
        return new Lease(this, null);
    }

    /// <summary>Registers a run so that Dispose can terminate it; terminated at once when Dispose has begun already.</summary>
    public Lease Track(RunOptions run)
    {
        lock (_gate)
        {
            if (_disposing) run.Terminate = true;
            else _runs.Add(run);
        }
        return new Lease(this, run);
    }

    /// <summary>
    /// Marks the object disposed, terminates the tracked runs, waits for every lease to end, then calls
    /// <paramref name="release"/> once. Later and concurrent calls wait for that release and return.
    /// </summary>
    public void Dispose(Action release)
    {
        lock (_gate)
        {
            if (_disposing)
            {
                while (!_released) Monitor.Wait(_gate);
                return;
            }
            _disposing = true;
            foreach (var run in _runs) run.Terminate = true;
            while (_leases > 0) Monitor.Wait(_gate);
        }
        try
        {
            release();
        }
        finally
        {
            lock (_gate)
            {
                _released = true;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void End(RunOptions? run)
    {
        lock (_gate)
        {
            if (run is not null)
            {
                _runs.Remove(run);
                return;
            }
            if (--_leases == 0) Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Ends a lease (or untracks a run) when disposed.</summary>
    public readonly struct Lease(NativeLifetime owner, RunOptions? run) : IDisposable
    {
        public void Dispose() => owner?.End(run);
    }
}
