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
/// model of what must be visible; after the scope, nothing of theirs is visible from a connection of its own.
/// </summary>
/// <remarks>
/// <para>
/// A program works through three application connections: two linq2db contexts and one raw ADO.NET connection, sync or
/// async step by step. Its steps begin, commit and roll back transactions (out of order too, which must fail cleanly),
/// insert, update, delete and query, and insert duplicates inside a nested transaction that catches the error and rolls
/// back. A failure prints CsCheck's seed and the smallest failing program it found; <c>CsCheck_Seed=&lt;seed&gt;</c> with
/// <c>TESTKIT_MODEL_PROGRAMS=1</c> replays exactly that program.
/// </para>
/// <para><c>TESTKIT_MODEL_PROGRAMS</c> sets how many programs run (default 300).</para>
/// </remarks>
public abstract class ModelBasedSuite
{
    const int Connections = 3;
    const int Keys = 6;

    static readonly Gen<Step> StepGen = Gen.Frequency(
        (4, Gen.Select(Gen.Int[0, Connections - 1], Gen.Bool, (c, a) => (Step)new Begin(c, a))),
        (3, Gen.Select(Gen.Int[0, Connections - 1], Gen.Bool, (c, a) => (Step)new Commit(c, a))),
        (2, Gen.Select(Gen.Int[0, Connections - 1], Gen.Bool, (c, a) => (Step)new Rollback(c, a))),
        (5, Gen.Select(Gen.Int[0, Connections - 1], Gen.Int[0, Keys - 1], Gen.Int[1, 99], Gen.Bool, (c, k, v, a) => (Step)new Insert(c, k, v, a))),
        (2, Gen.Select(Gen.Int[0, Connections - 1], Gen.Int[0, Keys - 1], Gen.Int[1, 99], Gen.Bool, (c, k, v, a) => (Step)new Update(c, k, v, a))),
        (2, Gen.Select(Gen.Int[0, Connections - 1], Gen.Int[0, Keys - 1], Gen.Bool, (c, k, a) => (Step)new Delete(c, k, a))),
        (1, Gen.Select(Gen.Int[0, Connections - 1], Gen.Bool, (c, a) => (Step)new Query(c, a))),
        (2, Gen.Select(Gen.Int[0, Connections - 1], Gen.Int[0, Keys - 1], Gen.Int[1, 99], Gen.Bool, (c, k, v, a) => (Step)new CaughtDuplicate(c, k, v, a))));

    static readonly Gen<Step[]> ProgramGen = StepGen.Array[1, 30];

    static int Programs =>
        int.TryParse(Environment.GetEnvironmentVariable("TESTKIT_MODEL_PROGRAMS"), CultureInfo.InvariantCulture, out var programs) ? programs : 300;

    [Test]
    [CancelAfter(600_000)]
    public async Task Random_transaction_programs_see_what_the_model_says_and_leave_nothing()
    {
        var ran = 0;
        var steps = 0;
        await ProgramGen.SampleAsync(
            async program =>
            {
                await RunAsync(program);
                Interlocked.Increment(ref ran);
                Interlocked.Add(ref steps, program.Length);
            },
            iter: Programs,
            threads: 2,
            print: program => string.Join("; ", program.Select(step => step.ToString())));

        var summary = $"model-based: {ran} programs, {steps} steps, every step as the model said, no row left after any program";
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
                await run.StepAsync(program[i]);
                await run.CheckAsync(i, program[i]);
            }
        }
        catch (Exception exception) when (exception is not ModelMismatchException)
        {
            throw new ModelMismatchException($"a step failed: {exception.GetType().Name}: {exception.Message}\n{scope.Trace}", exception);
        }
        finally
        {
            await run.DisposeAsync();
            await scope.DisposeAsync();
        }

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

    static async Task ExpectFailureAsync(Func<Task> action, string message, string what)
    {
        try
        {
            await action();
        }
        catch (InvalidOperationException exception) when (exception.Message.Contains(message, StringComparison.Ordinal))
        {
            return;
        }

        throw new ModelMismatchException($"{what}: expected an InvalidOperationException saying \"{message}\"");
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

    /// <summary>What a program holds on one connection: no transaction, an active one, or one an outer rollback discarded.</summary>
    enum Held
    {
        None,
        Active,
        Discarded,
    }

    /// <summary>One program against one scope, and the model of what it must see.</summary>
    sealed class ProgramRun : IAsyncDisposable
    {
        readonly TestScope _scope;
        readonly string _tag;
        readonly ShopDb[] _contexts;
        readonly DbConnection _raw;
        readonly DbTransaction?[] _rawTransactions = new DbTransaction?[Connections];
        readonly Held[] _held = new Held[Connections];

        // The model: the rows visible in the scope, and per open transaction (in begin order) its connection and the rows before it began.
        Dictionary<int, int> _rows = [];
        readonly List<(int Connection, Dictionary<int, int> Before)> _open = [];

        public ProgramRun(TestScope scope, string tag)
        {
            _scope = scope;
            _tag = tag;
            _contexts = [new ShopDb(scope.Options), new ShopDb(scope.Options)];
            _raw = scope.OpenConnection();
        }

        bool IsRaw(int connection) => connection == Connections - 1;

        string Name(int key) => $"{_tag}-{key}";

        public async Task StepAsync(Step step)
        {
            switch (step)
            {
                case Begin begin:
                    await BeginAsync(begin);
                    break;
                case Commit commit when _held[commit.Connection] == Held.Active && _open[^1].Connection != commit.Connection:
                    await ExpectFailureAsync(() => CommitAsync(commit), "cannot commit while", "an outer transaction commits before its inner one");
                    break;
                case Commit commit when _held[commit.Connection] == Held.Active:
                    await CommitAsync(commit);
                    _open.RemoveAt(_open.Count - 1);
                    _held[commit.Connection] = Held.None;
                    break;
                case Commit commit when _held[commit.Connection] == Held.Discarded:
                    await ExpectFailureAsync(() => CommitAsync(commit), "rolled back because", "a transaction commits after an outer one rolled it back");
                    break;
                case Rollback rollback when _held[rollback.Connection] == Held.Active:
                    await RollbackAsync(rollback);
                    var index = _open.FindIndex(o => o.Connection == rollback.Connection);
                    _rows = _open[index].Before;
                    foreach (var (connection, _) in _open.Skip(index + 1))
                        _held[connection] = Held.Discarded;
                    _open.RemoveRange(index, _open.Count - index);
                    _held[rollback.Connection] = Held.None;
                    break;
                case Rollback rollback when _held[rollback.Connection] == Held.Discarded:
                    await RollbackAsync(rollback);
                    _held[rollback.Connection] = Held.None;
                    break;
                case Insert insert when !_rows.ContainsKey(insert.Key):
                    Expect(await ExecuteAsync(insert, $"INSERT INTO items (name, quantity) VALUES ('{Name(insert.Key)}', {insert.Value})") == 1, "an insert affects one row");
                    _rows[insert.Key] = insert.Value;
                    break;
                case Update update:
                    Expect(await ExecuteAsync(update, $"UPDATE items SET quantity = {update.Value} WHERE name = '{Name(update.Key)}'") == (_rows.ContainsKey(update.Key) ? 1 : 0),
                        "an update affects the rows the model has");
                    if (_rows.ContainsKey(update.Key))
                        _rows[update.Key] = update.Value;
                    break;
                case Delete delete:
                    Expect(await ExecuteAsync(delete, $"DELETE FROM items WHERE name = '{Name(delete.Key)}'") == (_rows.Remove(delete.Key) ? 1 : 0),
                        "a delete affects the rows the model has");
                    break;
                case Query query:
                    var read = await ReadAsync(query.Connection, query.Async);
                    Expect(Same(read, _rows), $"c{query.Connection} reads {Show(read)}, the model has {Show(_rows)}");
                    break;
                case CaughtDuplicate duplicate when _held[duplicate.Connection] == Held.None:
                    await CaughtDuplicateAsync(duplicate);
                    break;
            }
        }

        async Task BeginAsync(Begin begin)
        {
            var c = begin.Connection;
            if (IsRaw(c))
            {
                if (_held[c] == Held.Active)
                {
                    await ExpectFailureAsync(() => _raw.BeginTransactionAsync().AsTask(), "already has a transaction", "a connection begins a second transaction");
                    return;
                }

                _rawTransactions[c] = begin.Async ? await _raw.BeginTransactionAsync() : _raw.BeginTransaction();
            }
            else if (_held[c] != Held.None)
            {
                // linq2db keeps a discarded transaction too, until the application rolls it back.
                await ExpectFailureAsync(async () => { if (begin.Async) await _contexts[c].BeginTransactionAsync(); else _contexts[c].BeginTransaction(); },
                    "already has transaction", "a DataConnection begins a second transaction");
                return;
            }
            else if (begin.Async)
            {
                await _contexts[c].BeginTransactionAsync();
            }
            else
            {
                _contexts[c].BeginTransaction();
            }

            _open.Add((c, new Dictionary<int, int>(_rows)));
            _held[c] = Held.Active;
        }

        async Task CommitAsync(Step step)
        {
            var c = step.Connection;
            if (IsRaw(c))
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
            if (IsRaw(c))
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
            if (!IsRaw(step.Connection))
                return step.Async ? await _contexts[step.Connection].ExecuteAsync(sql) : _contexts[step.Connection].Execute(sql);

            await using var command = _raw.CreateCommand();
            command.CommandText = sql;
            command.Transaction = _rawTransactions[step.Connection];
            return step.Async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery();
        }

        async Task CaughtDuplicateAsync(CaughtDuplicate step)
        {
            var exists = _rows.ContainsKey(step.Key);
            await BeginAsync(new Begin(step.Connection, step.Async));
            try
            {
                await ExecuteAsync(step, $"INSERT INTO items (name, quantity) VALUES ('{Name(step.Key)}', {step.Value})");
                Expect(!exists, "a duplicate insert succeeded");
                _rows[step.Key] = step.Value;
                await StepAsync(new Commit(step.Connection, step.Async));
            }
            catch (DbException) when (exists)
            {
                await StepAsync(new Rollback(step.Connection, step.Async));
            }
        }

        async Task<Dictionary<int, int>> ReadAsync(int connection, bool async)
        {
            var pattern = _tag + "-%";
            if (!IsRaw(connection))
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

        /// <summary>After every step, the scope shows exactly the model's rows, through a connection the program does not use.</summary>
        public async Task CheckAsync(int index, Step step)
        {
            var pattern = _tag + "-%";
            var rows = await _scope.Db.GetTable<Item>().Where(i => Sql.Like(i.Name, pattern)).ToListAsync();
            var actual = rows.ToDictionary(r => int.Parse(r.Name[(_tag.Length + 1)..], CultureInfo.InvariantCulture), r => r.Quantity);
            Expect(Same(actual, _rows), $"after step {index + 1} ({step}) the scope shows {Show(actual)}, the model has {Show(_rows)}");
        }

        static bool Same(Dictionary<int, int> actual, Dictionary<int, int> expected) =>
            actual.Count == expected.Count && actual.All(row => expected.TryGetValue(row.Key, out var value) && value == row.Value);

        public async ValueTask DisposeAsync()
        {
            foreach (var context in _contexts)
                await context.DisposeAsync();
            await _raw.DisposeAsync();
        }
    }
}
