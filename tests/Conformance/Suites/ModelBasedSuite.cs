using System.Data.Common;
using System.Globalization;
using CsCheck;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Random programs of nested transactions and writes, run in a scope and checked, after every step, against an in-memory
/// model of what must be visible and of what must fail; after the scope, nothing of theirs is visible from a connection
/// of its own, and the scope reports a divergence from production exactly when the model says it must.
/// </summary>
/// <remarks>
/// <para>
/// A program works through three application connections: two linq2db contexts and one raw ADO.NET connection, sync or
/// async step by step. Its steps begin, commit and roll back transactions (out of order too, which must fail cleanly),
/// insert, update, delete and query; insert duplicates inside a nested transaction that catches the error; cancel a
/// running statement; bulk copy (a duplicate key makes it fail); commit an inner transaction while another task rolls
/// back the outer one; and turn statement savepoints on and off. The model knows what a failed statement aborts
/// (PostgreSQL), what a rollback discards of other connections, and when a rollback undoes another connection's write
/// made outside any transaction, which production would have committed.
/// </para>
/// <para>
/// A failure prints CsCheck's seed and the smallest failing program it found; <c>CsCheck_Seed=&lt;seed&gt;</c> with
/// <c>TESTKIT_MODEL_PROGRAMS=1</c> replays exactly that program. <c>TESTKIT_MODEL_PROGRAMS</c> sets how many programs run
/// (default 300).
/// </para>
/// </remarks>
public abstract class ModelBasedSuite
{
    const int Connections = 3;
    const int Raw = Connections - 1;
    const int Keys = 6;

    static readonly Gen<int> ConnectionGen = Gen.Int[0, Connections - 1];
    static readonly Gen<int> ContextGen = Gen.Int[0, Connections - 2];
    static readonly Gen<int> KeyGen = Gen.Int[0, Keys - 1];
    static readonly Gen<int> ValueGen = Gen.Int[1, 99];

    static readonly Gen<Step> StepGen = Gen.Frequency(
        (8, Gen.Select(ConnectionGen, Gen.Bool, (c, a) => (Step)new Begin(c, a))),
        (6, Gen.Select(ConnectionGen, Gen.Bool, (c, a) => (Step)new Commit(c, a))),
        (4, Gen.Select(ConnectionGen, Gen.Bool, (c, a) => (Step)new Rollback(c, a))),
        (10, Gen.Select(ConnectionGen, KeyGen, ValueGen, Gen.Bool, (c, k, v, a) => (Step)new Insert(c, k, v, a))),
        (4, Gen.Select(ConnectionGen, KeyGen, ValueGen, Gen.Bool, (c, k, v, a) => (Step)new Update(c, k, v, a))),
        (4, Gen.Select(ConnectionGen, KeyGen, Gen.Bool, (c, k, a) => (Step)new Delete(c, k, a))),
        (2, Gen.Select(ConnectionGen, Gen.Bool, (c, a) => (Step)new Query(c, a))),
        (4, Gen.Select(ConnectionGen, KeyGen, ValueGen, Gen.Bool, (c, k, v, a) => (Step)new CaughtDuplicate(c, k, v, a))),
        (1, Gen.Bool.Select(a => (Step)new Cancel(Raw, a))),
        (2, Gen.Select(ContextGen, KeyGen, ValueGen, Gen.Bool, (c, k, v, a) => (Step)new BulkCopy(c, k, v, a))),
        (2, Gen.Bool.Select(a => (Step)new RaceCommitAndRollback(0, a))),
        (2, Gen.Const((Step)new ToggleStatementSavepoints(0, false))));

    static readonly Gen<Step[]> ProgramGen = StepGen.Array[1, 30];

    static int Programs =>
        int.TryParse(Environment.GetEnvironmentVariable("TESTKIT_MODEL_PROGRAMS"), CultureInfo.InvariantCulture, out var programs) ? programs : 300;

    [Test]
    [CancelAfter(600_000)]
    public async Task Random_transaction_programs_see_what_the_model_says_and_leave_nothing()
    {
        var ran = 0;
        var steps = 0;
        // Babelfish cannot run SqlClient's bulk copy (BabelfishDifference.BulkCopyColumnList), nor a statement that waits to
        // be cancelled (BabelfishDifference.NoWaitFor): its programs do without both.
        var onBabelfish = BabelfishDifference.OnBabelfish;
        await (onBabelfish ? ProgramGen.Select(program => program.Where(step => step is not (BulkCopy or Cancel)).ToArray()) : ProgramGen).SampleAsync(
            async program =>
            {
                await RunAsync(program);
                Interlocked.Increment(ref ran);
                Interlocked.Add(ref steps, program.Length);
            },
            iter: Programs,
            threads: 2,
            print: program => string.Join("; ", program.Select(step => step.ToString())));

        var summary = $"model-based: {ran} programs, {steps} steps, every step as the model said, no row left after any program" +
                      (onBabelfish ? $" (without bulk copies and cancellations, for Babelfish's differences: {BabelfishDifference.BulkCopyColumnList}, {BabelfishDifference.NoWaitFor})" : string.Empty);
        await TestContext.Out.WriteLineAsync(summary);
        await TestContext.Progress.WriteLineAsync($"linq2db-testkit: {summary} ({TestRun.Database.Provider.DisplayName})");
        Assert.That(ran, Is.GreaterThanOrEqualTo(Programs));
    }

    static async Task RunAsync(Step[] program)
    {
        var tag = $"m{Guid.NewGuid():N}"[..13];
        var scope = await TestRun.Database.BeginScopeAsync();
        var run = new ProgramRun(scope, tag);
        try
        {
            for (var i = 0; i < program.Length; i++)
            {
                await run.StepAsync(program[i], i);
                await run.CheckAsync(i, program[i]);
            }
        }
        catch (Exception exception)
        {
            var trace = scope.Trace;
            await run.DisposeAsync();
            try
            {
                await scope.DisposeAsync();
            }
            catch (TestScopeException)
            {
                // The program already failed; what the scope's end says adds nothing.
            }

            if (exception is ModelMismatchException)
                throw;
            throw new ModelMismatchException($"a step failed: {exception.GetType().Name}: {exception.Message}\n{trace}", exception);
        }

        await run.DisposeAsync();
        await run.EndAsync();
        Expect(await Outside.CountItemsAsync(tag) == 0, "rows of the program remain after its scope ended");
    }

    /// <summary>
    /// A program saw something the model did not expect. A plain exception, not an NUnit assertion: NUnit would record
    /// every failing program on the test, while CsCheck is to report only the smallest, with its seed.
    /// </summary>
    sealed class ModelMismatchException(string message, Exception? inner = null) : Exception(message, inner);

    static void Expect(bool holds, string what)
    {
        if (!holds)
            throw new ModelMismatchException(what);
    }

    /// <summary>Runs <paramref name="action"/>, which must fail with <typeparamref name="TException"/> saying <paramref name="message"/>.</summary>
    static async Task ExpectFailureAsync<TException>(Func<Task> action, string message, string what)
        where TException : Exception
    {
        try
        {
            await action();
        }
        catch (TException exception) when (exception.Message.Contains(message, StringComparison.Ordinal))
        {
            return;
        }
        catch (Exception exception)
        {
            throw new ModelMismatchException($"{what}: expected a {typeof(TException).Name} saying \"{message}\", got {exception.GetType().Name}: {exception.Message}", exception);
        }

        throw new ModelMismatchException($"{what}: expected a {typeof(TException).Name} saying \"{message}\", and nothing failed");
    }

    static string Show(Dictionary<int, int> rows) =>
        rows.Count == 0 ? "nothing" : string.Join(", ", rows.OrderBy(r => r.Key).Select(r => $"{r.Key}={r.Value}"));

    public abstract record Step(int Connection, bool Async)
    {
        protected string How => $"c{Connection}{(Async ? " async" : string.Empty)}";
    }

    public sealed record Begin(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"begin {How}";
    }

    public sealed record Commit(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"commit {How}";
    }

    public sealed record Rollback(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"rollback {How}";
    }

    public sealed record Insert(int Connection, int Key, int Value, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"insert {Key}={Value} {How}";
    }

    public sealed record Update(int Connection, int Key, int Value, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"update {Key}={Value} {How}";
    }

    public sealed record Delete(int Connection, int Key, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"delete {Key} {How}";
    }

    public sealed record Query(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"query {How}";
    }

    public sealed record CaughtDuplicate(int Connection, int Key, int Value, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"insert {Key}={Value} in a transaction that catches a duplicate {How}";
    }

    public sealed record Cancel(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"cancel a running statement {How}";
    }

    public sealed record BulkCopy(int Connection, int Key, int Value, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"bulk copy {Key}={Value} {How}";
    }

    public sealed record RaceCommitAndRollback(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => $"commit the innermost transaction while another task rolls back the one before it{(Async ? " async" : string.Empty)}";
    }

    public sealed record ToggleStatementSavepoints(int Connection, bool Async) : Step(Connection, Async)
    {
        public override string ToString() => "toggle statement savepoints";
    }

    /// <summary>What a program holds on one connection: no transaction, an active one, or one an outer rollback discarded.</summary>
    enum Held
    {
        None,
        Active,
        Discarded,
    }

    /// <summary>An open transaction of the model: its connection, the rows before it began, and the step that began it.</summary>
    sealed record OpenTransaction(int Connection, Dictionary<int, int> Before, int Step)
    {
        /// <summary>Whether it wrote: what its commit makes durable in production.</summary>
        public bool Wrote { get; set; }
    }

    /// <summary>One program against one scope, and the model of what it must see.</summary>
    sealed class ProgramRun : IAsyncDisposable
    {
        readonly TestScope _scope;
        readonly string _tag;
        readonly ShopDb[] _contexts;
        readonly DbConnection _raw;
        readonly DbTransaction?[] _rawTransactions = new DbTransaction?[Connections];
        readonly bool _failuresAbort;

        // The model.
        readonly Held[] _held = new Held[Connections];
        readonly bool[] _pendingDivergence = new bool[Connections];
        readonly List<OpenTransaction> _open = [];
        readonly List<(int Connection, int Step)> _unprotectedWrites = [];
        Dictionary<int, int> _rows = [];
        bool _statementSavepoints;
        bool _divergenceExpected;

        /// <summary>How many transactions were open when a failure aborted the test's transaction (PostgreSQL); null while it lives.</summary>
        int? _abortedWithOpen;

        int _step;

        public ProgramRun(TestScope scope, string tag)
        {
            _scope = scope;
            _tag = tag;
            _contexts = [new ShopDb(scope.Options), new ShopDb(scope.Options)];
            _raw = scope.OpenConnection();
            _failuresAbort = scope.Database.Provider.FailedStatementAbortsTransaction;
            _statementSavepoints = scope.StatementSavepoints;
        }

        bool Aborted => _abortedWithOpen is not null;

        string Name(int key) => $"{_tag}-{key}";

        /// <summary>A failed statement aborts the transaction unless it ran in a statement savepoint of its own (PostgreSQL).</summary>
        void StatementFailed()
        {
            if (_failuresAbort && !_statementSavepoints)
                _abortedWithOpen ??= _open.Count;
        }

        public async Task StepAsync(Step step, int index)
        {
            _step = index + 1;
            switch (step)
            {
                case ToggleStatementSavepoints:
                    _statementSavepoints = !_statementSavepoints;
                    _scope.StatementSavepoints = _statementSavepoints;
                    return;
                case RaceCommitAndRollback race:
                    await RaceAsync(race);
                    return;
            }

            var c = step.Connection;
            switch (step)
            {
                case Begin begin when !IsRawConnection(c) && _held[c] != Held.None:
                    // linq2db keeps a discarded transaction too, until the application rolls it back.
                    await ExpectFailureAsync<InvalidOperationException>(() => BeginAsync(begin), "already has transaction", "a DataConnection begins a second transaction");
                    return;
                case Begin begin when IsRawConnection(c) && _held[c] == Held.Active:
                    await ExpectFailureAsync<InvalidOperationException>(() => BeginAsync(begin), "already has a transaction", "a connection begins a second transaction");
                    return;
                case Commit when _held[c] == Held.None:
                case Rollback when _held[c] == Held.None:
                case CaughtDuplicate when _held[c] != Held.None:
                    return;
            }

            if (_pendingDivergence[c])
            {
                // The connection's transaction was rolled back with another connection's: its next use says so, once.
                _pendingDivergence[c] = false;
                _divergenceExpected = true;
                await ExpectFailureAsync<TestScopeException>(() => RunAsync(step), "rolled back because", $"{step} after its transaction was discarded");
                return;
            }

            switch (step)
            {
                case Commit commit when _held[c] == Held.Discarded:
                    await ExpectFailureAsync<InvalidOperationException>(() => CommitAsync(commit), "rolled back because", "a transaction commits after an outer one rolled it back");
                    return;
                case Rollback rollback when _held[c] == Held.Discarded:
                    await RollbackAsync(rollback);
                    _held[c] = Held.None;
                    return;
                case Commit commit when _open[^1].Connection != c:
                    await ExpectFailureAsync<InvalidOperationException>(() => CommitAsync(commit), "cannot commit while", "an outer transaction commits before its inner one");
                    return;
                case Commit commit:
                    await CommitAsync(commit);
                    if (Aborted && _abortedWithOpen >= _open.Count)
                    {
                        // PostgreSQL's COMMIT of a failed transaction rolls it back.
                        RolledBack(_open.Count - 1);
                    }
                    else
                    {
                        Committed();
                    }

                    return;
                case Rollback rollback:
                    await RollbackAsync(rollback);
                    RolledBack(_open.FindIndex(o => o.Connection == c));
                    return;
            }

            if (Aborted)
            {
                // Everything that sends a statement fails until a rollback revives the transaction.
                await ExpectFailureAsync<DbException>(() => RunAsync(step), "aborted", $"{step} while the transaction is aborted");
                return;
            }

            switch (step)
            {
                case Begin begin:
                    await BeginAsync(begin);
                    _open.Add(new OpenTransaction(c, new Dictionary<int, int>(_rows), _step));
                    _held[c] = Held.Active;
                    break;
                case Insert insert when !_rows.ContainsKey(insert.Key):
                    Expect(await ExecuteAsync(insert, $"INSERT INTO items (name, quantity) VALUES ('{Name(insert.Key)}', {insert.Value})") == 1, "an insert affects one row");
                    _rows[insert.Key] = insert.Value;
                    Wrote(c);
                    break;
                case Update update:
                    var updates = _rows.ContainsKey(update.Key) ? 1 : 0;
                    Expect(await ExecuteAsync(update, $"UPDATE items SET quantity = {update.Value} WHERE name = '{Name(update.Key)}'") == updates, "an update affects the rows the model has");
                    if (updates == 1)
                    {
                        _rows[update.Key] = update.Value;
                        Wrote(c);
                    }

                    break;
                case Delete delete:
                    var deletes = _rows.Remove(delete.Key) ? 1 : 0;
                    Expect(await ExecuteAsync(delete, $"DELETE FROM items WHERE name = '{Name(delete.Key)}'") == deletes, "a delete affects the rows the model has");
                    if (deletes == 1)
                        Wrote(c);
                    break;
                case Query query:
                    var read = await ReadAsync(query.Connection, query.Async);
                    Expect(Same(read, _rows), $"c{query.Connection} reads {Show(read)}, the model has {Show(_rows)}");
                    break;
                case CaughtDuplicate duplicate:
                    await CaughtDuplicateAsync(duplicate);
                    break;
                case Cancel cancel:
                    await ExpectCancelledAsync(cancel);
                    StatementFailed();
                    break;
                case BulkCopy copy when _rows.ContainsKey(copy.Key):
                    await ExpectBulkCopyFailureAsync(copy);
                    StatementFailed();
                    // Where a failed copy does not abort the transaction (SQL Server), the kit counts it as a write.
                    if (!_failuresAbort)
                        Wrote(c);
                    break;
                case BulkCopy copy:
                    await BulkCopyAsync(copy);
                    _rows[copy.Key] = copy.Value;
                    Wrote(c);
                    break;
            }
        }

        /// <summary>The step's own action, for a step the model expects to fail before it does anything.</summary>
        Task RunAsync(Step step) => step switch
        {
            Begin begin => BeginAsync(begin),
            Commit commit => CommitAsync(commit),
            Rollback rollback => RollbackAsync(rollback),
            Insert insert => ExecuteAsync(insert, $"INSERT INTO items (name, quantity) VALUES ('{Name(insert.Key)}', {insert.Value})"),
            Update update => ExecuteAsync(update, $"UPDATE items SET quantity = {update.Value} WHERE name = '{Name(update.Key)}'"),
            Delete delete => ExecuteAsync(delete, $"DELETE FROM items WHERE name = '{Name(delete.Key)}'"),
            Query query => ReadAsync(query.Connection, query.Async),
            CaughtDuplicate duplicate => BeginAsync(new Begin(duplicate.Connection, duplicate.Async)),
            Cancel cancel => ExecuteAsync(cancel, "SELECT 1"),
            BulkCopy copy => BulkCopyAsync(copy),
            _ => throw new ArgumentOutOfRangeException(nameof(step)),
        };

        /// <summary>
        /// A write outside any transaction of its connection, while another connection's transaction is open: in
        /// production it commits at once; here it nests, and that transaction's rollback would undo it.
        /// </summary>
        void Wrote(int connection)
        {
            if (_held[connection] == Held.Active)
                _open.Single(o => o.Connection == connection).Wrote = true;
            else if (_open.Any(o => o.Connection != connection))
                _unprotectedWrites.Add((connection, _step));
        }

        /// <summary>
        /// The innermost transaction committed. What it wrote is durable in production; here it nests in the transactions
        /// of other connections begun before it, and a rollback of one of them would undo it.
        /// </summary>
        void Committed()
        {
            var committed = _open[^1];
            _open.RemoveAt(_open.Count - 1);
            _held[committed.Connection] = Held.None;
            if (committed.Wrote && _open.Any(o => o.Connection != committed.Connection))
                _unprotectedWrites.Add((committed.Connection, _step));
        }

        /// <summary>The open transaction at <paramref name="index"/> rolled back: it and those begun after it end.</summary>
        void RolledBack(int index)
        {
            var transaction = _open[index];
            _rows = transaction.Before;
            if (_unprotectedWrites.Any(w => w.Step > transaction.Step && w.Connection != transaction.Connection))
                _divergenceExpected = true;
            _unprotectedWrites.RemoveAll(w => w.Step > transaction.Step);
            foreach (var newer in _open.Skip(index + 1))
            {
                _held[newer.Connection] = Held.Discarded;
                _pendingDivergence[newer.Connection] = true;
            }

            _open.RemoveRange(index, _open.Count - index);
            _held[transaction.Connection] = Held.None;
            if (_abortedWithOpen > index)
                _abortedWithOpen = null;
        }

        bool IsRawConnection(int connection) => connection == Raw;

        async Task BeginAsync(Begin begin)
        {
            var c = begin.Connection;
            if (IsRawConnection(c))
                _rawTransactions[c] = begin.Async ? await _raw.BeginTransactionAsync() : _raw.BeginTransaction();
            else if (begin.Async)
                await _contexts[c].BeginTransactionAsync();
            else
                _contexts[c].BeginTransaction();
        }

        async Task CommitAsync(Step step)
        {
            var c = step.Connection;
            if (IsRawConnection(c))
            {
                if (step.Async)
                    await _rawTransactions[c]!.CommitAsync();
                else
                    _rawTransactions[c]!.Commit();
            }
            else if (step.Async)
            {
                await _contexts[c].CommitTransactionAsync();
            }
            else
            {
                _contexts[c].CommitTransaction();
            }
        }

        async Task RollbackAsync(Step step)
        {
            var c = step.Connection;
            if (IsRawConnection(c))
            {
                if (step.Async)
                    await _rawTransactions[c]!.RollbackAsync();
                else
                    _rawTransactions[c]!.Rollback();
            }
            else if (step.Async)
            {
                await _contexts[c].RollbackTransactionAsync();
            }
            else
            {
                _contexts[c].RollbackTransaction();
            }
        }

        async Task<int> ExecuteAsync(Step step, string sql)
        {
            if (!IsRawConnection(step.Connection))
                return step.Async ? await _contexts[step.Connection].ExecuteAsync(sql) : _contexts[step.Connection].Execute(sql);

            await using var command = _raw.CreateCommand();
            command.CommandText = sql;
            command.Transaction = _rawTransactions[step.Connection];
            return step.Async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery();
        }

        async Task CaughtDuplicateAsync(CaughtDuplicate step)
        {
            var exists = _rows.ContainsKey(step.Key);
            await StepAsync(new Begin(step.Connection, step.Async), _step - 1);
            try
            {
                await ExecuteAsync(step, $"INSERT INTO items (name, quantity) VALUES ('{Name(step.Key)}', {step.Value})");
                Expect(!exists, "a duplicate insert succeeded");
                _rows[step.Key] = step.Value;
                Wrote(step.Connection);
                await StepAsync(new Commit(step.Connection, step.Async), _step - 1);
            }
            catch (DbException exception) when (exists && exception is not TestScopeException)
            {
                StatementFailed();
                await StepAsync(new Rollback(step.Connection, step.Async), _step - 1);
            }
        }

        /// <summary>A statement that runs until it is cancelled: once the server runs it, so that the server cancels it.</summary>
        async Task ExpectCancelledAsync(Cancel step)
        {
            var provider = _scope.Database.Provider;
            await using var command = _raw.CreateCommand();
            command.CommandText = provider.Name == "postgres" ? "SELECT pg_sleep(30)" : "WAITFOR DELAY '00:00:30'";
            command.Transaction = _rawTransactions[Raw];
            using var cancellation = new CancellationTokenSource();
            var running = WhenRunningAsync(provider.Name == "postgres"
                ? $"SELECT COUNT(*) FROM pg_stat_activity WHERE pid = {((Npgsql.NpgsqlConnection)TestScope.GetDriverConnection(_raw)).ProcessID} AND state = 'active' AND query LIKE '%pg_sleep(30)%'"
                : $"SELECT COUNT(*) FROM sys.dm_exec_requests WHERE session_id = {((Microsoft.Data.SqlClient.SqlConnection)TestScope.GetDriverConnection(_raw)).ServerProcessId} AND wait_type = 'WAITFOR'",
                () =>
                {
                    if (step.Async)
                        cancellation.Cancel();
                    else
                        command.Cancel();
                });

            try
            {
                if (step.Async)
                    await command.ExecuteNonQueryAsync(cancellation.Token);
                else
                    command.ExecuteNonQuery();
                throw new ModelMismatchException("a cancelled statement completed");
            }
            catch (Exception exception) when (exception is DbException or OperationCanceledException && exception is not TestScopeException)
            {
            }

            await running;
        }

        static async Task WhenRunningAsync(string probe, Action cancel)
        {
            for (var attempt = 0; attempt < 600; attempt++)
            {
                await Task.Delay(10);
                await using var outside = Outside.Open();
                await using var command = outside.CreateCommand();
                command.CommandText = probe;
                if (Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture) > 0)
                {
                    cancel();
                    return;
                }
            }

            throw new ModelMismatchException("the statement to cancel never showed as running");
        }

        Task<BulkCopyRowsCopied> BulkCopyAsync(BulkCopy step)
        {
            var options = new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific };
            Item[] rows = [new Item { Name = Name(step.Key), Quantity = step.Value }];
            var db = _contexts[step.Connection];
            return step.Async ? db.BulkCopyAsync(options, rows) : Task.FromResult(db.BulkCopy(options, rows));
        }

        async Task ExpectBulkCopyFailureAsync(BulkCopy step)
        {
            try
            {
                await BulkCopyAsync(step);
            }
            catch (Exception exception) when (exception is DbException or InvalidOperationException && exception is not TestScopeException)
            {
                return;
            }

            throw new ModelMismatchException("a bulk copy of a duplicate key succeeded");
        }

        /// <summary>
        /// The innermost transaction commits while another task rolls back the one before it. Either may win: if the
        /// rollback does, it takes the inner transaction with it, and the commit says so. Either way the rows are those
        /// before the outer transaction.
        /// </summary>
        async Task RaceAsync(RaceCommitAndRollback race)
        {
            if (_open.Count < 2 || Aborted || _pendingDivergence.Any(p => p))
                return;

            var inner = _open[^1].Connection;
            var outer = _open[^2].Connection;
            var commit = Task.Run(() => CommitAsync(new Commit(inner, race.Async)));
            var rollback = Task.Run(() => RollbackAsync(new Rollback(outer, race.Async)));
            await rollback;
            try
            {
                await commit;
                Committed();
                RolledBack(_open.FindIndex(o => o.Connection == outer));
            }
            catch (TestScopeException exception) when (exception.Message.Contains("rolled back because", StringComparison.Ordinal))
            {
                // The rollback won: the inner transaction was discarded, and its commit said so.
                RolledBack(_open.FindIndex(o => o.Connection == outer));
                _pendingDivergence[inner] = false;
                _divergenceExpected = true;
            }
        }

        async Task<Dictionary<int, int>> ReadAsync(int connection, bool async)
        {
            var pattern = _tag + "-%";
            if (!IsRawConnection(connection))
            {
                var query = _contexts[connection].Items.Where(i => Sql.Like(i.Name, pattern)).Select(i => new { i.Name, i.Quantity });
                var rows = async ? await query.ToListAsync() : query.ToList();
                return rows.ToDictionary(r => int.Parse(r.Name[(_tag.Length + 1)..], CultureInfo.InvariantCulture), r => r.Quantity);
            }

            await using var command = _raw.CreateCommand();
            command.CommandText = $"SELECT name, quantity FROM items WHERE name LIKE '{pattern}'";
            command.Transaction = _rawTransactions[connection];
            var result = new Dictionary<int, int>();
            await using var reader = async ? await command.ExecuteReaderAsync() : command.ExecuteReader();
            while (async ? await reader.ReadAsync() : reader.Read())
                result[int.Parse(reader.GetString(0)[(_tag.Length + 1)..], CultureInfo.InvariantCulture)] = reader.GetInt32(1);
            return result;
        }

        /// <summary>After every step, the scope shows exactly the model's rows, or is aborted when the model says so, through a connection the program does not use.</summary>
        public async Task CheckAsync(int index, Step step)
        {
            var pattern = _tag + "-%";
            if (Aborted)
            {
                await ExpectFailureAsync<TestScopeException>(() => _scope.Db.GetTable<Item>().Where(i => Sql.Like(i.Name, pattern)).ToListAsync(),
                    "aborted the test's transaction", $"after step {index + 1} ({step}) the transaction is aborted");
                return;
            }

            var rows = await _scope.Db.GetTable<Item>().Where(i => Sql.Like(i.Name, pattern)).ToListAsync();
            var actual = rows.ToDictionary(r => int.Parse(r.Name[(_tag.Length + 1)..], CultureInfo.InvariantCulture), r => r.Quantity);
            Expect(Same(actual, _rows), $"after step {index + 1} ({step}) the scope shows {Show(actual)}, the model has {Show(_rows)}");
        }

        /// <summary>The scope ends, failing with the divergences from production exactly when the model expects some.</summary>
        public async Task EndAsync()
        {
            if (_divergenceExpected)
            {
                await ExpectFailureAsync<TestScopeException>(async () => await _scope.DisposeAsync(), "behaved differently from production", "the end of the scope");
                return;
            }

            try
            {
                await _scope.DisposeAsync();
            }
            catch (TestScopeException exception)
            {
                throw new ModelMismatchException($"the scope's end reported what the model did not expect: {exception.Message}", exception);
            }
        }

        static bool Same(Dictionary<int, int> actual, Dictionary<int, int> expected) =>
            actual.Count == expected.Count && actual.All(row => expected.TryGetValue(row.Key, out var value) && value == row.Value);

        /// <summary>
        /// Disposes the program's connections in order, as an application would at its end: each rolls back the
        /// transaction it still holds, and the model follows.
        /// </summary>
        public async ValueTask DisposeAsync()
        {
            for (var c = 0; c < Connections; c++)
            {
                if (_held[c] == Held.Active)
                    RolledBack(_open.FindIndex(o => o.Connection == c));
                if (IsRawConnection(c))
                    await _raw.DisposeAsync();
                else
                    await _contexts[c].DisposeAsync();
            }
        }
    }
}
