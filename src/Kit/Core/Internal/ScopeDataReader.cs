using System.Collections;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// The reader of a statement run on a scope's connection: the driver's reader, until another connection of the scope
/// needs the one server session while this result is still being read. In production they would be two connections;
/// here the rest of this result is read into memory (<see cref="BufferRest"/>), the session is free for the other
/// statement, and this reader goes on from memory — what drivers without multiple active result sets do.
/// </summary>
/// <remarks>
/// <para>
/// Each value read from memory is the value the driver gave: for each column the kit reads the rest of the rows with the
/// method the application used on that column so far (<c>GetFieldValue&lt;DateTimeOffset&gt;</c>, <c>GetInt32</c>, …),
/// and with <c>GetValue</c> a column not read yet.
/// </para>
/// <para>
/// Where reading into memory cannot give what the driver would, the other connection is refused at once instead, saying
/// why: a reader with <see cref="CommandBehavior.SequentialAccess"/> (its values can be read once only, in order), and a
/// reader whose current value the application holds as a stream.
/// </para>
/// </remarks>
internal sealed class ScopeDataReader : DbDataReader
{
    readonly DbDataReader _inner;
    readonly TestScopeConnection _owner;
    readonly bool _sequential;
    readonly bool _closesHandle;

    // A move (Read, NextResult) may await the server: it holds the semaphore. A read of a value does not: it holds the
    // lock. Reading into memory holds both, so that it begins only once the application's read under way has ended.
    readonly SemaphoreSlim _moving = new(1, 1);
    readonly Lock _reading = new();
    Func<DbDataReader, int, object>?[] _readers = [];
    List<Result>? _buffered;
    int _result;
    int _row = -1;
    bool _streamHandedOut;
    bool _closed;
    int _recordsAffected = -1;

    /// <param name="inner">The driver's reader.</param>
    /// <param name="owner">The connection whose statement it reads.</param>
    /// <param name="behavior">What the application asked for.</param>
    public ScopeDataReader(DbDataReader inner, TestScopeConnection owner, CommandBehavior behavior)
    {
        _inner = inner;
        _owner = owner;
        _sequential = behavior.HasFlag(CommandBehavior.SequentialAccess);
        _closesHandle = behavior.HasFlag(CommandBehavior.CloseConnection);
    }

    /// <summary>A result set read into memory: its columns, its rows, and where its reader stood.</summary>
    sealed record Result(string[] Names, Type[] Types, string[] TypeNames, List<object[]> Rows, int RecordsAffected, DataTable? Schema);

    /// <summary>Whether the rest of the result can be read into memory; otherwise why not.</summary>
    public string? CannotBuffer =>
        _sequential ? "its reader was opened with CommandBehavior.SequentialAccess, whose values can be read once only, in order"
        : _streamHandedOut ? "the application holds a value of its current row as a stream"
        : null;

    /// <summary>
    /// Whether the driver's reader still holds the session, once a move or a close of the application that is under way
    /// has ended (an asynchronous close lets the session go only when it completes).
    /// </summary>
    public async ValueTask<bool> HoldsSession(bool async)
    {
        await TakeTurn(async, CancellationToken.None).ConfigureAwait(false);
        try
        {
            lock (_reading)
                return _buffered is null && !_closed && !_inner.IsClosed;
        }
        finally
        {
            _moving.Release();
        }
    }

    /// <summary>
    /// Reads the rest of this result, and of the result sets after it, into memory and closes the driver's reader,
    /// once a move or a read of the application that is under way has ended. The caller holds the scope's session.
    /// </summary>
    /// <remarks>It reads synchronously, holding the lock that the application's reads of values take, so that none of them runs meanwhile.</remarks>
    /// <returns>How many rows it read into memory.</returns>
    public async ValueTask<int> BufferRest(bool async)
    {
        await TakeTurn(async, CancellationToken.None).ConfigureAwait(false);
        try
        {
            lock (_reading)
            {
                if (_buffered is not null || _closed || _inner.IsClosed)
                    return 0;

                var results = new List<Result>();
                var rows = 0;
                var positioned = _row >= 0;
                do
                {
                    var count = _inner.FieldCount;
                    var readers = results.Count == 0 ? _readers : [];
                    if (readers.Length < count)
                        Array.Resize(ref readers, count);
                    // linq2db reads the schema when it first maps a query's columns (whether a column allows NULL).
                    var result = new Result(new string[count], new Type[count], new string[count], [], _inner.RecordsAffected, count > 0 ? _inner.GetSchemaTable() : null);
                    for (var i = 0; i < count; i++)
                    {
                        result.Names[i] = _inner.GetName(i);
                        result.Types[i] = _inner.GetFieldType(i);
                        result.TypeNames[i] = _inner.GetDataTypeName(i);
                    }

                    // The current row, which the application may still be reading, comes first.
                    if (positioned)
                        result.Rows.Add(ReadRow(readers, count));
                    while (_inner.Read())
                        result.Rows.Add(ReadRow(readers, count));
                    rows += result.Rows.Count;
                    results.Add(result);
                    positioned = false;
                }
                while (_inner.NextResult());

                _inner.Dispose();
                _result = 0;
                _row = _row >= 0 ? 0 : -1;
                _buffered = results;
                return rows;
            }
        }
        finally
        {
            _moving.Release();
        }
    }

    /// <summary>Waits for the semaphore of moves; the caller releases it.</summary>
    ValueTask TakeTurn(bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(_moving.WaitAsync(cancellationToken));
        _moving.Wait(cancellationToken);
        return ValueTask.CompletedTask;
    }

    object[] ReadRow(Func<DbDataReader, int, object>?[] readers, int count)
    {
        var values = new object[count];
        for (var i = 0; i < count; i++)
            values[i] = _inner.IsDBNull(i) ? DBNull.Value : readers[i] is { } read ? read(_inner, i) : _inner.GetValue(i);
        return values;
    }

    Result Current => _buffered![_result];

    object Value(int ordinal) =>
        _row >= 0 && _row < Current.Rows.Count ? Current.Rows[_row][ordinal] : throw new InvalidOperationException("No row is available: call Read first.");

    /// <summary>A value: from the driver's reader, noting how the column is read, or from memory.</summary>
    T Get<T>(int ordinal, Func<DbDataReader, int, T> read)
    {
        lock (_reading)
        {
            if (UseDriver())
            {
                if (ordinal >= _readers.Length)
                    Array.Resize(ref _readers, Math.Max(ordinal + 1, _inner.FieldCount));
                _readers[ordinal] ??= (reader, i) => read(reader, i)!;
                return read(_inner, ordinal);
            }

            return Convert<T>(Value(ordinal), ordinal);
        }
    }

    T Convert<T>(object value, int ordinal)
    {
        if (value is T typed)
            return typed;
        if (value is DBNull)
            return default(T) is null ? default! : throw new InvalidCastException($"Column {Current.Names[ordinal]} is NULL.");

        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        return (T)(value switch
        {
            DateTime moment when target == typeof(DateTimeOffset) => new DateTimeOffset(moment.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(moment, DateTimeKind.Utc) : moment),
            DateTimeOffset offset when target == typeof(DateTime) => offset.UtcDateTime,
            _ when target.IsEnum => Enum.ToObject(target, value),
            IConvertible when typeof(IConvertible).IsAssignableFrom(target) => System.Convert.ChangeType(value, target, CultureInfo.InvariantCulture),
            _ => throw new InvalidCastException(
                $"Column {Current.Names[ordinal]} was read into memory as {value.GetType()}, because another connection of the test's scope needed the session " +
                $"while this result was read; it cannot be read as {typeof(T)} from there. Read the result to its end before the other statement."),
        });
    }

    /// <summary>Metadata or state: from the driver's reader, or from memory.</summary>
    T Either<T>(Func<DbDataReader, T> fromDriver, Func<ScopeDataReader, T> fromMemory)
    {
        lock (_reading)
            return UseDriver() ? fromDriver(_inner) : fromMemory(this);
    }

    /// <summary>
    /// Whether to read from the driver's reader rather than memory; refused once closed, since the driver may by then
    /// have given its reader object to another statement (Npgsql keeps one per server session). The caller holds the lock.
    /// </summary>
    bool UseDriver() =>
        _closed ? throw new InvalidOperationException("The data reader is closed.") : _buffered is null;

    public override object this[int ordinal] => GetValue(ordinal);

    public override object this[string name] => GetValue(GetOrdinal(name));

    public override int Depth => Either(static r => r.Depth, static _ => 0);

    public override int FieldCount => Either(static r => r.FieldCount, static self => self.Current.Names.Length);

    public override bool HasRows => Either(static r => r.HasRows, static self => self.Current.Rows.Count > 0);

    public override bool IsClosed
    {
        get
        {
            lock (_reading)
                return _closed || (_buffered is null && _inner.IsClosed);
        }
    }

    public override int RecordsAffected
    {
        get
        {
            lock (_reading)
                return _closed ? _recordsAffected : _buffered is null ? _inner.RecordsAffected : Current.RecordsAffected;
        }
    }

    public override int VisibleFieldCount => Either(static r => r.VisibleFieldCount, static self => self.Current.Names.Length);

    public override bool GetBoolean(int ordinal) => Get(ordinal, static (r, i) => r.GetBoolean(i));

    public override byte GetByte(int ordinal) => Get(ordinal, static (r, i) => r.GetByte(i));

    public override long GetBytes(int ordinal, long dataOffset, byte[]? buffer, int bufferOffset, int length)
    {
        lock (_reading)
        {
            if (UseDriver())
                return _inner.GetBytes(ordinal, dataOffset, buffer, bufferOffset, length);
        }

        return Copy(GetFieldValue<byte[]>(ordinal), dataOffset, buffer, bufferOffset, length);
    }

    public override char GetChar(int ordinal) => Get(ordinal, static (r, i) => r.GetChar(i));

    public override long GetChars(int ordinal, long dataOffset, char[]? buffer, int bufferOffset, int length)
    {
        lock (_reading)
        {
            if (UseDriver())
                return _inner.GetChars(ordinal, dataOffset, buffer, bufferOffset, length);
        }

        return Copy(GetFieldValue<string>(ordinal).ToCharArray(), dataOffset, buffer, bufferOffset, length);
    }

    static long Copy<TItem>(TItem[] source, long offset, TItem[]? buffer, int bufferOffset, int length)
    {
        if (buffer is null)
            return source.Length;
        var count = (int)Math.Max(0, Math.Min(length, source.Length - offset));
        Array.Copy(source, offset, buffer, bufferOffset, count);
        return count;
    }

    public override string GetDataTypeName(int ordinal) => Either(r => r.GetDataTypeName(ordinal), self => self.Current.TypeNames[ordinal]);

    public override DateTime GetDateTime(int ordinal) => Get(ordinal, static (r, i) => r.GetDateTime(i));

    public override decimal GetDecimal(int ordinal) => Get(ordinal, static (r, i) => r.GetDecimal(i));

    public override double GetDouble(int ordinal) => Get(ordinal, static (r, i) => r.GetDouble(i));

    public override IEnumerator GetEnumerator() => new DbEnumerator(this, closeReader: false);

    [return: DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields | DynamicallyAccessedMemberTypes.PublicProperties)]
    public override Type GetFieldType(int ordinal) => Either(r => r.GetFieldType(ordinal), self => self.Current.Types[ordinal]);

    public override T GetFieldValue<T>(int ordinal) => Get(ordinal, static (r, i) => r.GetFieldValue<T>(i));

    public override float GetFloat(int ordinal) => Get(ordinal, static (r, i) => r.GetFloat(i));

    public override Guid GetGuid(int ordinal) => Get(ordinal, static (r, i) => r.GetGuid(i));

    public override short GetInt16(int ordinal) => Get(ordinal, static (r, i) => r.GetInt16(i));

    public override int GetInt32(int ordinal) => Get(ordinal, static (r, i) => r.GetInt32(i));

    public override long GetInt64(int ordinal) => Get(ordinal, static (r, i) => r.GetInt64(i));

    public override string GetName(int ordinal) => Either(r => r.GetName(ordinal), self => self.Current.Names[ordinal]);

    public override int GetOrdinal(string name) => Either(r => r.GetOrdinal(name), self =>
    {
        var names = self.Current.Names;
        var index = Array.FindIndex(names, n => string.Equals(n, name, StringComparison.Ordinal));
        if (index < 0)
            index = Array.FindIndex(names, n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
        return index >= 0 ? index : throw new IndexOutOfRangeException($"No column named {name}.");
    });

    public override Type GetProviderSpecificFieldType(int ordinal) => Either(r => r.GetProviderSpecificFieldType(ordinal), self => self.Current.Types[ordinal]);

    public override object GetProviderSpecificValue(int ordinal) => Get(ordinal, static (r, i) => r.GetProviderSpecificValue(i));

    public override int GetProviderSpecificValues(object[] values) => GetValues(values);

    public override DataTable? GetSchemaTable() => Either(static r => r.GetSchemaTable(), static self => self.Current.Schema);

    public override Stream GetStream(int ordinal)
    {
        lock (_reading)
        {
            if (UseDriver())
            {
                _streamHandedOut = true;
                return _inner.GetStream(ordinal);
            }
        }

        return new MemoryStream(GetFieldValue<byte[]>(ordinal), writable: false);
    }

    public override string GetString(int ordinal) => Get(ordinal, static (r, i) => r.GetString(i));

    public override TextReader GetTextReader(int ordinal)
    {
        lock (_reading)
        {
            if (UseDriver())
            {
                _streamHandedOut = true;
                return _inner.GetTextReader(ordinal);
            }
        }

        return new StringReader(GetFieldValue<string>(ordinal));
    }

    public override object GetValue(int ordinal) => Get(ordinal, static (r, i) => r.GetValue(i));

    public override int GetValues(object[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var count = Math.Min(values.Length, FieldCount);
        for (var i = 0; i < count; i++)
            values[i] = GetValue(i);
        return count;
    }

    public override bool IsDBNull(int ordinal)
    {
        lock (_reading)
            return UseDriver() ? _inner.IsDBNull(ordinal) : Value(ordinal) is DBNull;
    }

    public override bool NextResult() => Move(async: false, next: true, CancellationToken.None).GetAwaiter().GetResult();

    public override Task<bool> NextResultAsync(CancellationToken cancellationToken) => Move(async: true, next: true, cancellationToken).AsTask();

    public override bool Read() => Move(async: false, next: false, CancellationToken.None).GetAwaiter().GetResult();

    public override Task<bool> ReadAsync(CancellationToken cancellationToken) => Move(async: true, next: false, cancellationToken).AsTask();

    async ValueTask<bool> Move(bool async, bool next, CancellationToken cancellationToken)
    {
        await TakeTurn(async, cancellationToken).ConfigureAwait(false);
        try
        {
            bool fromDriver;
            lock (_reading)
                fromDriver = UseDriver();
            if (fromDriver)
            {
                var moved = next
                    ? async ? await _inner.NextResultAsync(cancellationToken).ConfigureAwait(false) : _inner.NextResult()
                    : async ? await _inner.ReadAsync(cancellationToken).ConfigureAwait(false) : _inner.Read();
                lock (_reading)
                {
                    _streamHandedOut = false;
                    _row = moved && !next ? 0 : -1;
                    if (next)
                        _readers = [];
                }

                return moved;
            }

            lock (_reading)
            {
                if (!next)
                    return ++_row < Current.Rows.Count;
                _row = -1;
                if (_result + 1 >= _buffered!.Count)
                    return false;
                _result++;
                return true;
            }
        }
        finally
        {
            _moving.Release();
        }
    }

    // Closing holds the semaphore too, so that another connection's statement waits until the driver's reader has let
    // the session go. The driver's reader is closed and disposed at once and never touched again: the driver may give
    // the same object to the next statement on the session.
    public override void Close() => CloseReader(async: false).GetAwaiter().GetResult();

    public override Task CloseAsync() => CloseReader(async: true).AsTask();

    async ValueTask CloseReader(bool async)
    {
        await TakeTurn(async, CancellationToken.None).ConfigureAwait(false);
        try
        {
            bool fromDriver;
            lock (_reading)
            {
                if (_closed)
                    return;
                fromDriver = _buffered is null;
                if (!fromDriver)
                {
                    _recordsAffected = _buffered![^1].RecordsAffected;
                    _closed = true;
                }
            }

            if (fromDriver)
            {
                try
                {
                    if (async)
                        await _inner.CloseAsync().ConfigureAwait(false);
                    else
                        _inner.Close();
                    _recordsAffected = _inner.RecordsAffected;
                }
                finally
                {
                    lock (_reading)
                        _closed = true;
                    if (async)
                        await _inner.DisposeAsync().ConfigureAwait(false);
                    else
                        _inner.Dispose();
                }
            }
        }
        finally
        {
            _moving.Release();
        }

        if (_closesHandle)
        {
            if (async)
                await _owner.CloseAsync().ConfigureAwait(false);
            else
                _owner.Close();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            Close();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await CloseAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
