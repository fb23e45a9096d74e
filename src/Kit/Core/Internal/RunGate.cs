namespace Linq2DbTestKit.Internal;

/// <summary>
/// Who may use a run's database at once: any number of test scopes together (shared), or one real-commit session
/// alone (exclusive). First come, first served: a scope asked for after a session waits for it, so a session is not
/// starved by a stream of parallel tests.
/// </summary>
internal sealed class RunGate
{
    readonly Lock _lock = new();
    readonly LinkedList<Waiter> _waiting = new();
    int _shared;
    bool _exclusive;

    /// <summary>How many scopes hold the gate now.</summary>
    public int SharedHolders
    {
        get
        {
            lock (_lock)
                return _shared;
        }
    }

    /// <summary>Enters shared; <paramref name="reentrant"/> enters at once unless a session holds the gate (the flow already holds it).</summary>
    public Task EnterSharedAsync(bool reentrant, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_exclusive && (_waiting.Count == 0 || reentrant))
            {
                _shared++;
                return Task.CompletedTask;
            }

            return Enqueue(exclusive: false, cancellationToken);
        }
    }

    public Task EnterExclusiveAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_exclusive && _shared == 0 && _waiting.Count == 0)
            {
                _exclusive = true;
                return Task.CompletedTask;
            }

            return Enqueue(exclusive: true, cancellationToken);
        }
    }

    public void ExitShared()
    {
        lock (_lock)
        {
            _shared--;
            Grant();
        }
    }

    public void ExitExclusive()
    {
        lock (_lock)
        {
            _exclusive = false;
            Grant();
        }
    }

    Task Enqueue(bool exclusive, CancellationToken cancellationToken)
    {
        var waiter = new Waiter(exclusive);
        var node = _waiting.AddLast(waiter);
        if (cancellationToken.CanBeCanceled)
        {
            waiter.Cancellation = cancellationToken.Register(() =>
            {
                lock (_lock)
                {
                    if (node.List is null)
                        return;
                    _waiting.Remove(node);
                    waiter.Completion.TrySetCanceled(cancellationToken);
                    Grant();
                }
            });
        }

        return waiter.Completion.Task;
    }

    void Grant()
    {
        while (_waiting.First is { } first)
        {
            var waiter = first.Value;
            if (waiter.Exclusive)
            {
                if (_exclusive || _shared > 0)
                    return;
                _exclusive = true;
            }
            else
            {
                if (_exclusive)
                    return;
                _shared++;
            }

            _waiting.RemoveFirst();
            waiter.Cancellation.Dispose();
            waiter.Completion.TrySetResult();
        }
    }

    sealed class Waiter(bool exclusive)
    {
        public bool Exclusive { get; } = exclusive;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
